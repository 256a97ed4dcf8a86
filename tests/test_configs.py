"""Every YAML under configs/ instantiates: whole configs directly, fragments inside the quickstart."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from mtlbench.bench.run.launch import MtlbenchCLI

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUICKSTART = CONFIGS / "quickstart.yaml"
# fragment folder -> the CLI option it fills
FRAGMENT_OPTION = {
    "trainer": "--trainer",
    "data": "--data",
    "model": "--model.net",
    "method": "--model.method",
    "optim": "--model.optimizer",
    "logger": "--trainer.logger",
}
ALL_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name not in ("sweeps", "perf"))
PERF_CONFIGS = sorted((CONFIGS / "perf").glob("*.yaml"))


def cli_args(config: Path) -> list[str]:
    group = config.parent.name
    args = ["--config", str(QUICKSTART), FRAGMENT_OPTION[group], str(config)] if group in FRAGMENT_OPTION else ["--config", str(config)]
    if not torch.cuda.is_available():
        args += ["--trainer.accelerator=cpu", "--trainer.precision=32-true"]  # GPU configs on a CPU machine
    return args


def test_every_config_is_covered():
    assert {p.parent.name for p in ALL_CONFIGS} >= {"configs", *FRAGMENT_OPTION}


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_instantiates(config: Path, tmp_path):
    cli = MtlbenchCLI(args=[*cli_args(config), f"--trainer.default_root_dir={tmp_path}"], run=False)
    assert cli.model.task_names == [task.name for task in cli.datamodule.tasks]
    assert cli.trainer is not None
    assert sum(p.numel() for p in cli.model.parameters()) > 0


def test_the_wandb_logger_config_keeps_the_csv_logs_first(tmp_path, monkeypatch):
    from mtlbench.bench.run.loggers import WandbRunLogger

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cli = MtlbenchCLI(args=[*cli_args(CONFIGS / "logger" / "wandb.yaml"), f"--trainer.default_root_dir={tmp_path}"], run=False)
    csv, wandb = cli.trainer.loggers
    assert type(csv).__name__ == "CSVLogger" and isinstance(wandb, WandbRunLogger) and wandb.resolved_offline


@pytest.mark.parametrize("config", PERF_CONFIGS, ids=lambda p: p.name)
def test_perf_config_names_a_model_and_variants_that_exist(config: Path):
    from mtlbench.bench.sweeps.perf.steps import build_parser
    from mtlbench.bench.sweeps.perf.variants import load_method, parse_variant

    cfg = build_parser().parse_args(["--config", str(config)])
    assert Path(cfg.net.absolute).is_file()
    for spec in map(parse_variant, cfg.variants):
        if not spec.is_reference:
            load_method(Path(cfg.method_dir.absolute) / f"{spec.name}.yaml", spec.features)


@pytest.mark.parametrize("model", ["tiny_vit", "tiny_swin", "tiny_convnext", "tiny_mtan"])
def test_a_model_config_fits_synthetic_scenes_at_96x128(model, tiny_cache, tmp_path):
    """A plain ViT, a Swin, a ConvNeXt and MTAN, each a short fit on 96x128 scenes from its config."""
    import json

    from mtlbench.bench.run.launch import main
    from tests.conftest import tiny_cli_args

    args = tiny_cli_args(tiny_cache, tmp_path, str(QUICKSTART))
    args += ["--data.init_args.height=96", "--data.init_args.width=128", "--data.init_args.num_train=16", "--trainer.max_epochs=1"]
    assert main(["fit", *args, f"--model.net={CONFIGS / 'model' / f'{model}.yaml'}", "--test_after_fit=false"]) == 0
    record = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert record["status"] == "fitted" and len(record["metrics"]["val"]) == 1
    assert all(value == value for task in record["metrics"]["val"][0]["tasks"].values() for value in task.values())


def test_the_configs_page_shows_the_quickstart_config_as_it_is():
    page = (CONFIGS.parent / "docs" / "configs.md").read_text()
    shown = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(shown) == yaml.safe_load(QUICKSTART.read_text())
