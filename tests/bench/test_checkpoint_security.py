"""Checkpoints from others are data: a crafted one is refused in one line and runs nothing."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from mtlbench.bench.run.checkpoints import METHOD_STATE_KEY, check_checkpoint, check_model_state, read_count
from mtlbench.bench.run.errors import CheckpointError
from mtlbench.bench.run.launch import main
from mtlbench.bench.run.methods import GRADIENT_AGGREGATORS, LOSS_WEIGHTINGS, DualBalancing, EqualWeighting, NashMTL, UPGrad
from mtlbench.bench.run.module import MultiTaskModule
from mtlbench.models import MultiTaskNet
from mtlbench.tasks import depth_task, segmentation_task
from tests.bench.payloads import pickled_command
from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
NASH = str(REPO / "configs" / "method" / "nash_mtl.yaml")
STATEFUL_NAMES = {"DynamicWeightAverage", "FastAdaptiveMultitask", "NashMTL", "GradVac", "ExcessMTL", "DualBalancing", "PCD"}


@pytest.fixture(scope="module")
def nash_fit(tiny_cache, tmp_path_factory) -> tuple[list[str], Path]:
    """The CLI arguments of a 1-epoch Nash-MTL fit on the tiny release, and its last.ckpt."""
    folder = tmp_path_factory.mktemp("nash")
    args = [*tiny_cli_args(tiny_cache, folder, QUICKSTART), f"--model.method={NASH}", "--trainer.max_epochs=1"]
    assert main(["fit", *args, "--test_after_fit=false"]) == 0
    return args, next(folder.rglob("last.ckpt"))


def rewritten(last: Path, target: Path, change) -> Path:
    checkpoint = torch.load(last, weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, target)
    return target


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1]


def test_the_attack_checkpoint_is_refused_in_one_line_and_runs_nothing(nash_fit, tmp_path, capsys):
    args, last = nash_fit
    marker = tmp_path / "ran"

    def attack(checkpoint):
        checkpoint["state_dict"][METHOD_STATE_KEY] = pickled_command(marker)

    crafted = rewritten(last, tmp_path / "crafted.ckpt", attack)
    assert torch.load(crafted, weights_only=True)  # torch's own check lets it through: the tensor is bytes
    assert main(["test", *args, f"--ckpt_path={crafted}"]) == 2
    line = error_line(capsys)
    assert line.startswith(f"mtlbench: error: checkpoint {crafted} holds method state in the pickled layout of mtlbench before")
    time.sleep(0.5)  # the command, had it started, would have had time to run
    assert not marker.exists()


def test_a_checkpoint_of_another_method_is_named_with_both(nash_fit, capsys):
    args, last = nash_fit
    ew = str(REPO / "configs" / "method" / "upgrad.yaml")
    assert main(["test", *args, f"--model.method={ew}", f"--ckpt_path={last}"]) == 2
    expected = f"checkpoint {last} holds the state of NashMTL for 3 tasks; the run is configured with UPGrad for 3 tasks"
    assert error_line(capsys).startswith(f"mtlbench: error: {expected}")


def test_a_checkpoint_naming_code_outside_the_method_is_refused(nash_fit, tmp_path, capsys):
    args, last = nash_fit
    crafted = rewritten(last, tmp_path / "global.ckpt", lambda checkpoint: checkpoint.update(extra=Path("/etc/passwd")))
    assert main(["test", *args, f"--ckpt_path={crafted}"]) == 2
    expected = f"mtlbench: error: checkpoint {crafted} holds objects other than tensors and plain data (Unsupported global: GLOBAL pathlib."
    assert error_line(capsys).startswith(expected)


def test_a_checkpoint_step_count_that_is_no_count_is_refused_in_one_line(nash_fit, tmp_path, capsys):
    args, last = nash_fit
    crafted = rewritten(last, tmp_path / "count.ckpt", lambda checkpoint: checkpoint.update(zero_update_steps=2**70))
    assert main(["fit", *args, "--trainer.max_epochs=2", f"--ckpt_path={crafted}"]) == 2
    assert error_line(capsys).startswith(f"mtlbench: error: checkpoint {crafted}: zero_update_steps must be an int from 0 to 2^62, got ")


HYPERPARAMETERS = {  # issue 26's three: settings, a callable to call, a module to import
    "settings": {"optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 123.0}}, "grad_clip_norm": 0.5},
    "callable": {"lr_scheduler": {"class_path": "torch.optim.lr_scheduler.LambdaLR", "init_args": {"lr_lambda": "ckpt_payload.mark"}}},
    "import": {"net": "ckpt_payload.anything"},
}
NOTED = {"settings": "grad_clip_norm, optimizer.init_args.lr", "callable": "lr_scheduler.class_path, lr_scheduler.init_args.lr_lambda"}


@pytest.mark.parametrize("case", HYPERPARAMETERS)
def test_stored_hyperparameters_never_become_the_config(nash_fit, tmp_path, monkeypatch, capsys, case):
    """LightningCLI merges a checkpoint's hyper_parameters into the config; here they are data,
    named in one note, and nothing they name is imported or called (the payload module would
    write a marker file on import and on every call)."""
    args, last = nash_fit
    marker = tmp_path / "ran"
    payload = f"open({str(marker)!r}, 'a').write('imported')\ndef mark(*_):\n    open({str(marker)!r}, 'a').write('called')\n"
    (tmp_path / "ckpt_payload.py").write_text(payload)
    monkeypatch.syspath_prepend(str(tmp_path))
    crafted = rewritten(last, tmp_path / f"{case}.ckpt", lambda checkpoint: checkpoint.update(hyper_parameters=HYPERPARAMETERS[case]))
    assert main(["test", *args, f"--ckpt_path={crafted}"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "hyper-parameters" in line]
    assert notes == [
        f"mtlbench: note: checkpoint {crafted} carries hyper-parameters that differ from this command's ({NOTED.get(case, 'net')}); "
        "ignored: a run's configuration comes from its command and config files only"
    ]
    assert not marker.exists()
    save_dir = Path(next(arg for arg in args if arg.startswith("--trainer.logger.init_args.save_dir=")).split("=", 1)[1])
    record = json.loads(max(save_dir.rglob("results.json"), key=lambda path: path.stat().st_mtime).read_text())
    model = record["config"]["model"]  # the command's config, not the checkpoint's
    assert model["optimizer"]["init_args"]["lr"] == 0.001 and model.get("grad_clip_norm") is None


def test_a_checkpoint_whose_optimizer_has_other_settings_is_refused_in_one_line(nash_fit, tmp_path, capsys):
    """The optimizer state's hyper-parameters (torch restores them with the state) must be the
    config's: otherwise the run would train with settings its record does not name."""
    args, last = nash_fit

    def other_decay(checkpoint):
        checkpoint["optimizer_states"][0]["param_groups"][0]["weight_decay"] = 0.5

    crafted = rewritten(last, tmp_path / "decay.ckpt", other_decay)
    assert main(["fit", *args, "--trainer.max_epochs=2", f"--ckpt_path={crafted}"]) == 2
    assert error_line(capsys).endswith(
        f"mtlbench: error: checkpoint {crafted}: its optimizer has weight_decay 0.5 in parameter group 0, this run's config 1e-05; "
        "resume with the config that wrote the checkpoint (a checkpoint carries state, not settings)"
    )


@pytest.mark.parametrize("count", ["12", -1, True, 1.0])
def test_a_step_count_is_an_int_in_range(count):
    with pytest.raises(CheckpointError, match=r"^c: zero_update_steps must be an int from 0 to 2\^62, got "):
        read_count(count, "c: zero_update_steps")
    assert read_count(12, "c") == 12


def test_loading_without_weights_only_is_refused(nash_fit, capsys):
    args, last = nash_fit
    assert main(["test", *args, f"--ckpt_path={last}", "--weights_only=false"]) == 2
    assert "loads checkpoints with weights_only=True only" in error_line(capsys)


def tiny_model(method) -> MultiTaskModule:
    tasks = [segmentation_task(3), depth_task()]
    return MultiTaskModule(tasks, net=lambda t: MultiTaskNet(t, backbone="test_resnet", decoder_channels=8), method=method)


def test_a_state_dict_of_another_shape_is_one_line():
    model = tiny_model(EqualWeighting())
    saved = model.state_dict()
    key = next(name for name in saved if name.endswith(".weight"))
    saved[key] = torch.zeros(1)
    saved["net.extra.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError) as caught:
        check_model_state(saved, model, model.method, "checkpoint x.ckpt")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("checkpoint x.ckpt does not fit the configured model: 1 entries the model lacks (net.extra.weight)")
    assert f"1 of other shapes ({key}: (1,) in the checkpoint" in message


def pre_layout_entries(name: str, folder: Path) -> dict:
    """The method entries of a two-task state dict as mtlbench wrote them before
    mtlbench.method_state/1 (commit a3bc865), through a file read with weights_only=True: none
    for EW, an empty byte tensor for a torchjd method without state (UPGrad), DB-MTL's plain dict,
    and for a stateful torchjd method (Nash-MTL) its inner object pickled into a byte tensor."""
    import pickle

    import torchjd.aggregation as jd

    torch.manual_seed(0)
    if name == "ew":
        entries = {}
    elif name == "upgrad":
        entries = {METHOD_STATE_KEY: torch.zeros(0, dtype=torch.uint8)}
    elif name == "db_mtl":
        entries = {METHOD_STATE_KEY: {"steps": 2, "buffer": torch.randn(2, 8)}}
    else:
        inner = jd.NashMTL(n_tasks=2)
        for _ in range(2):
            inner(torch.randn(2, 8))
        entries = {METHOD_STATE_KEY: torch.frombuffer(bytearray(pickle.dumps(inner)), dtype=torch.uint8).clone()}
    torch.save(entries, folder / f"{name}.pt")
    return torch.load(folder / f"{name}.pt", weights_only=True)


@pytest.mark.parametrize("name, method", [("ew", EqualWeighting), ("upgrad", UPGrad), ("db_mtl", DualBalancing)])
def test_a_checkpoint_written_before_the_layout_loads_when_its_method_state_is_data(name, method, tmp_path):
    model = tiny_model(method())
    old = pre_layout_entries(name, tmp_path)
    saved = {key: value for key, value in model.state_dict().items() if not key.startswith("method.")} | old
    check_model_state(saved, model, model.method, f"checkpoint {name}.ckpt")
    model.load_state_dict(saved)
    if name == "db_mtl":
        assert model.method.steps == 2 and torch.equal(model.method.buffer, old[METHOD_STATE_KEY]["buffer"])


def test_a_checkpoint_written_before_the_layout_with_pickled_state_is_refused_in_one_line(tmp_path):
    model = tiny_model(NashMTL())
    old = pre_layout_entries("nash_mtl", tmp_path)
    saved = {key: value for key, value in model.state_dict().items() if not key.startswith("method.")} | old
    with pytest.raises(
        CheckpointError, match=r"^checkpoint nash.ckpt holds method state in the pickled layout of mtlbench before"
    ) as caught:
        check_model_state(saved, model, model.method, "checkpoint nash.ckpt")
    assert "\n" not in str(caught.value)


def test_a_checkpoint_without_method_state_is_refused_for_a_stateful_method():
    model = tiny_model(NashMTL())
    saved = {key: value for key, value in model.state_dict().items() if key != METHOD_STATE_KEY}
    with pytest.raises(CheckpointError, match=r"^checkpoint old.ckpt holds no method state \(a layout before"):
        check_model_state(saved, model, model.method, "checkpoint old.ckpt")


@pytest.mark.parametrize(
    "cls", [cls for cls in (*LOSS_WEIGHTINGS, *GRADIENT_AGGREGATORS) if cls.__name__ in STATEFUL_NAMES], ids=lambda c: c.__name__
)
def test_the_attack_checkpoint_of_every_stateful_method_is_refused_and_runs_nothing(cls, tmp_path):
    """The crafted entry written to and read from a file, as the CLI reads it, for each method."""
    marker = tmp_path / "ran"
    model = tiny_model(cls())
    saved = model.state_dict()
    saved[METHOD_STATE_KEY] = pickled_command(marker)
    torch.save({"state_dict": saved}, tmp_path / "crafted.ckpt")
    loaded = torch.load(tmp_path / "crafted.ckpt", weights_only=True)["state_dict"]
    with pytest.raises(CheckpointError, match=r"^checkpoint crafted.ckpt holds method state in the pickled layout"):
        check_model_state(loaded, model, model.method, "checkpoint crafted.ckpt")
    time.sleep(0.2)
    assert not marker.exists()


# ------------------------------------------------------------------ allocation bombs
# torch.load(weights_only=True) calls the callables torch allows with the file's arguments before
# anything checks the result: a 1 kB checkpoint asks for 8 GiB. Each bomb below is a torch.save
# archive whose data.pkl is written by hand, loaded in a child process whose address space may grow
# by 2 GiB only: each loader must refuse it in one line, and never get to allocate.
BIG = 1 << 33  # 8 GiB
STATE = b"}" + pickle.BINUNICODE + struct.pack("<I", 10) + b"state_dict"  # {'state_dict': ... (SETITEM at the end)


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _text(text: str) -> bytes:
    return pickle.BINUNICODE + struct.pack("<I", len(text)) + text.encode()


def _long(value: int) -> bytes:
    data = value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True)
    return pickle.LONG1 + bytes([len(data)]) + data


def _tensor(shape: int, numel: int = 3, offset: int = 0) -> bytes:
    """``_rebuild_tensor_v2`` of a float storage '0' of ``numel`` elements viewed with ``shape``."""
    pid = pickle.MARK + _text("storage") + _global("torch", "FloatStorage") + _text("0") + _text("cpu") + _long(numel) + pickle.TUPLE
    hooks = _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    arguments = pid + pickle.BINPERSID + _long(offset) + _long(shape) + pickle.TUPLE1 + _long(1) + pickle.TUPLE1 + pickle.NEWFALSE + hooks
    return _global("torch._utils", "_rebuild_tensor_v2") + pickle.MARK + arguments + pickle.TUPLE + pickle.REDUCE


def _call(module: str, name: str, argument: int) -> bytes:
    return _global(module, name) + _long(argument) + pickle.TUPLE1 + pickle.REDUCE


BOMBS = {  # data.pkl of {'state_dict': X}, for X:
    "bytearray": _call("builtins", "bytearray", BIG),  # bytes of the file's size
    "untyped-storage": _call("torch.storage", "UntypedStorage", BIG),  # a storage of the file's size
    "tensor-class": _call("torch", "FloatTensor", BIG // 4),  # a tensor of the file's size
    "tensor-past-its-storage": _tensor(BIG // 4),  # torch grows the 12-byte storage to fit the view
    "storage-larger-than-its-record": _tensor(3, numel=BIG // 4),  # the record holds 12 bytes
}
REFUSALS = {
    "bytearray": "holds objects other than tensors and plain data (Unsupported global: GLOBAL builtins.bytearray)",
    "untyped-storage": "holds objects other than tensors and plain data (Unsupported global: GLOBAL torch.storage.UntypedStorage)",
    "tensor-class": "holds objects other than tensors and plain data (Unsupported global: GLOBAL torch.FloatTensor)",
    "tensor-past-its-storage": "views storage 0 of 3 elements as a tensor of shape (2147483648,), which needs 2147483648",
    "storage-larger-than-its-record": "names storage 0 of 8589934592 bytes (2147483648 x torch.FloatStorage) but has a record of 12 bytes",
}


def with_data_pkl(target: Path, data: bytes | None = None) -> Path:
    """A checkpoint torch.save writes (one float tensor of 3 elements in storage '0'), its
    data.pkl replaced by ``data`` ({'state_dict': ...} around it) or kept (None)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_suffix(".saved")
    torch.save({"state_dict": {"w": torch.zeros(3)}}, scratch)
    with zipfile.ZipFile(scratch) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    scratch.unlink()
    with zipfile.ZipFile(target, "w") as archive:
        for info, content in members:
            replaced = info.filename.endswith("/data.pkl") and data is not None
            archive.writestr(info, pickle.PROTO + b"\x02" + STATE + data + pickle.SETITEM + pickle.STOP if replaced else content)
    return target


LOADERS = """
import resource, sys
from pathlib import Path
from mtlbench.bench.cli import gpu_check
from mtlbench.bench.run.checkpoints import AtomicCheckpointIO, stored_hyperparameters

LOAD = {
    "stored_hyperparameters": lambda path: stored_hyperparameters(path),
    "AtomicCheckpointIO.load_checkpoint": lambda path: AtomicCheckpointIO().load_checkpoint(path)["state_dict"],
    "gpu_check._state_tensors": lambda path: gpu_check._state_tensors(path.parents[2]),
}
used = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (used + (2 << 30), used + (2 << 30)))  # 2 GiB more than the imports took
for path in map(Path, sys.argv[1:]):
    for loader, load in LOAD.items():
        try:
            load(path)
            outcome = "loaded"
        except BaseException as error:
            outcome = (f"{type(error).__name__}: {error}".splitlines() or [""])[0]
        print(f"{path.parts[-4]}|{loader}|{outcome}", flush=True)
"""


@pytest.fixture(scope="module")
def bomb_outcomes(nash_fit, tmp_path_factory) -> dict[tuple[str, str], str]:
    """``{(checkpoint, loader): outcome}`` of each bomb, a real checkpoint of a fit and that
    checkpoint's archive rewritten as the bombs are (data.pkl kept), for each loader."""
    _, last = nash_fit
    folder = tmp_path_factory.mktemp("bombs")
    paths = [with_data_pkl(folder / name / "version_0" / "checkpoints" / "last.ckpt", data) for name, data in BOMBS.items()]
    paths.append(with_data_pkl(folder / "rewritten" / "version_0" / "checkpoints" / "last.ckpt"))
    real = folder / "fit" / "version_0" / "checkpoints" / "last.ckpt"
    real.parent.mkdir(parents=True)
    shutil.copy(last, real)
    done = subprocess.run([sys.executable, "-c", LOADERS, *map(str, [*paths, real])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = {}
    for line in done.stdout.splitlines():
        name, loader, outcome = line.split("|", 2)
        outcomes[name, loader] = outcome.replace(str(folder / name / "version_0" / "checkpoints" / "last.ckpt"), "PATH")
    return outcomes


BOMB_LOADERS = ("stored_hyperparameters", "AtomicCheckpointIO.load_checkpoint", "gpu_check._state_tensors")


@pytest.mark.parametrize("loader", BOMB_LOADERS)
@pytest.mark.parametrize("bomb", BOMBS)
def test_a_checkpoint_that_asks_for_more_than_its_file_holds_is_refused_before_loading(bomb_outcomes, bomb, loader):
    assert (
        bomb_outcomes[bomb, loader]
        == f"CheckpointError: checkpoint PATH {REFUSALS[bomb]}; it is not loaded: use a checkpoint written by mtlbench"
    )


@pytest.mark.parametrize("loader", BOMB_LOADERS)
def test_a_checkpoint_of_a_fit_and_a_rewritten_archive_still_load(bomb_outcomes, loader):
    """The negative control: the same loaders, the same memory limit, the suite's own files."""
    assert bomb_outcomes["fit", loader] == "loaded"
    assert bomb_outcomes["rewritten", loader] == "loaded"


def test_a_sweep_starts_afresh_the_run_whose_last_checkpoint_is_a_bomb(tmp_path, monkeypatch):
    """A runs folder copied from elsewhere: the run whose last.ckpt is a bomb is named in its log
    in one line and started afresh, never resumed from it; the other run resumes."""
    from mtlbench.bench.sweeps import sweep

    commands = []
    monkeypatch.setattr(sweep.subprocess, "run", lambda command, **_: commands.append(command) or subprocess.CompletedProcess(command, 0))
    bomb, good = (
        sweep.PlannedRun("EW-Adam-s0", ("--config", "x.yaml"), "Adam"),
        sweep.PlannedRun("EW-Adam-s1", ("--config", "x.yaml"), "Adam"),
    )
    bombed = with_data_pkl(bomb.record(tmp_path).parent / "checkpoints" / "last.ckpt", BOMBS["bytearray"])
    resumed = with_data_pkl(good.record(tmp_path).parent / "checkpoints" / "last.ckpt")
    assert sweep._run_locally(bomb, tmp_path, jobs=1) == ("EW-Adam-s0", 0)
    assert sweep._run_locally(good, tmp_path, jobs=1) == ("EW-Adam-s1", 0)
    assert [arg for arg in commands[0] if arg.startswith("--ckpt_path")] == []
    assert commands[1][-1] == f"--ckpt_path={resumed}"
    assert (tmp_path / "EW-Adam-s0.log").read_text().splitlines() == [
        f"mtlbench sweep: skipped unreadable checkpoint: checkpoint {bombed} {REFUSALS['bytearray']}; "
        "it is not loaded: use a checkpoint written by mtlbench"
    ]


def _archive(path: Path, members: dict[str, bytes], deflated: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content, zipfile.ZIP_DEFLATED if name == deflated else zipfile.ZIP_STORED)
    return path


def _plain_data_pkl() -> bytes:
    return pickle.PROTO + b"\x02" + STATE + pickle.EMPTY_DICT + pickle.SETITEM + pickle.STOP


ARCHIVE_REFUSALS = {
    "compressed": "holds archive/data/0 compressed (torch.save stores every member as it is)",
    "two-folders": "holds other/data/0 outside its folder archive",
    "tensor-state": "sets the state of a tensor (only an OrderedDict's is set in a checkpoint)",
    "storage-as-call": "calls torch.FloatStorage, which a checkpoint never calls (it would build what the file asks)",
    "no-pickle": "holds no archive/data.pkl",
    "nested-arguments": "calls collections.OrderedDict with arguments torch.save does not write",
}


def _nested(levels: int = 30) -> bytes:
    """A tuple holding 10 references to a tuple holding 10 references to ... (10^30 integers
    when walked naively: a check that follows it is a time bomb of its own)."""
    data = pickle.MARK * levels + pickle.BININT1 + b"\x01" + pickle.TUPLE1
    for level in range(levels):
        data += pickle.BINPUT + bytes([level]) + (pickle.BINGET + bytes([level])) * 9 + pickle.TUPLE
    return data


@pytest.mark.parametrize("case", ARCHIVE_REFUSALS)
def test_an_archive_torch_save_does_not_write_is_refused_in_one_line(tmp_path, case):
    """What the loader would read beyond a file's bytes or run on a tensor (a deflated record
    holds gigabytes of zeros in kilobytes; a tensor's state resizes its storage)."""
    members = {"archive/data.pkl": _plain_data_pkl(), "archive/data/0": bytes(12), "archive/version": b"3\n"}
    if case == "two-folders":
        members["other/data/0"] = members.pop("archive/data/0")
    elif case == "tensor-state":
        state = pickle.MARK + _text("storage") + pickle.NONE + pickle.TUPLE
        members["archive/data.pkl"] = pickle.PROTO + b"\x02" + STATE + _tensor(3) + state + pickle.BUILD + pickle.SETITEM + pickle.STOP
    elif case == "storage-as-call":
        members["archive/data.pkl"] = pickle.PROTO + b"\x02" + STATE + _call("torch", "FloatStorage", 3) + pickle.SETITEM + pickle.STOP
    elif case == "no-pickle":
        del members["archive/data.pkl"]
    elif case == "nested-arguments":
        call = _global("collections", "OrderedDict") + _nested() + pickle.TUPLE1 + pickle.REDUCE
        members["archive/data.pkl"] = pickle.PROTO + b"\x02" + STATE + call + pickle.SETITEM + pickle.STOP
    path = _archive(tmp_path / f"{case}.ckpt", members, deflated="archive/data/0" if case == "compressed" else "")
    with pytest.raises(CheckpointError) as caught:
        check_checkpoint(path)
    assert str(caught.value) == f"checkpoint {path} {ARCHIVE_REFUSALS[case]}; it is not loaded: use a checkpoint written by mtlbench"


def test_an_archive_of_more_members_than_a_checkpoint_is_refused_before_its_directory_is_read(tmp_path, monkeypatch):
    from mtlbench.bench.run import checkpoint_manifest

    monkeypatch.setattr(checkpoint_manifest, "MAX_MEMBERS", 4)
    members = {"archive/data.pkl": _plain_data_pkl(), "archive/data/0": bytes(12), "archive/version": b"3\n"}
    check_checkpoint(_archive(tmp_path / "three.ckpt", members))  # the negative control
    path = _archive(tmp_path / "five.ckpt", members | {f"archive/extra{index}": b"" for index in range(2)})
    with pytest.raises(
        CheckpointError, match=r"five.ckpt lists 5 members in \d+ bytes, more than the 4 members of a checkpoint; it is not"
    ):
        check_checkpoint(path)
