"""W&B through configs: offline without credentials, tags from the run record, the record uploaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wandb
import yaml

from mtlbench.bench.run.launch import main
from mtlbench.bench.run.loggers import WandbRunLogger, has_wandb_credentials
from tests.conftest import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


def test_credentials_come_from_the_environment_or_netrc(no_credentials, tmp_path, monkeypatch):
    assert not has_wandb_credentials()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password 0123456789\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert has_wandb_credentials()
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert has_wandb_credentials()
    assert WandbRunLogger(save_dir=str(tmp_path), offline=True).resolved_offline


def test_a_run_without_credentials_logs_offline_with_tags_and_its_record(no_credentials, tiny_cache, tmp_path):
    loggers = yaml.safe_load((REPO / "configs" / "logger" / "wandb.yaml").read_text())
    for logger in loggers:
        logger["init_args"]["save_dir"] = str(tmp_path)
    loggers[1]["init_args"]["group"] = "test-sweep"
    config = tmp_path / "loggers.yaml"
    config.write_text(yaml.safe_dump(loggers))
    args = [*tiny_cli_args(tiny_cache, tmp_path, str(REPO / "configs" / "quickstart.yaml")), "--trainer.max_epochs=1"]
    affinity = '{"class_path": "mtlbench.bench.run.callbacks.TaskAffinity", "init_args": {"every_n_steps": 2}}'
    assert main(["fit", *args, f"--trainer.logger={config}", f"--trainer.callbacks+={affinity}"]) == 0
    record_path = next(tmp_path.rglob("version_0/results.json"))
    written = json.loads(record_path.read_text())
    assert written["status"] == "complete" and written["wandb"]["offline"] is True and written["wandb"]["url"] is None
    offline_runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1
    files = offline_runs[0] / "files"
    uploaded = files / "results.json"
    assert uploaded.is_file() and json.loads(uploaded.read_text())["status"] == "complete"
    # the offline log is protobuf records; tags, group and config keys are stored as plain strings.
    # run.finish() returns before the W&B service has flushed that log (a process exit would wait
    # for it at its atexit teardown; this test process goes on), so shut the service down first
    wandb.teardown()
    log = next(offline_runs[0].glob("*.wandb")).read_bytes()
    # the task affinity's lookaheads reach W&B as they reach every logger
    assert b"affinity/depth->segmentation" in log and "task_affinity" in written
    for text in ("method:EW", "optimizer:Adam", "seed:0", "dataset:SyntheticScenesDataModule", "mtl", "test-sweep", "mtlbench"):
        assert text.encode() in log, text


def test_describe_run_and_attach_record_on_the_live_run(no_credentials, tmp_path):
    logger = WandbRunLogger(save_dir=str(tmp_path), group="g", tags=["extra"])
    assert logger.resolved_offline
    record = {
        "method": {"name": "UW"},
        "optimizer": {"name": "SGD"},
        "seed": 3,
        "dataset": {"name": "NYUv2DataModule", "tasks": [{"name": "depth"}]},
        "config": {"seed_everything": 3},
    }
    logger.describe_run(record)
    run = logger.experiment
    assert set(run.tags) == {"extra", "method:UW", "optimizer:SGD", "seed:3", "dataset:NYUv2DataModule", "stl"}
    assert run.group == "g" and run.config["tasks"] == ["depth"] and run.config["mtlbench"]["seed_everything"] == 3
    assert record["wandb"] == {"entity": record["wandb"]["entity"], "project": "mtlbench", "id": run.id, "url": None, "offline": True}
    path = tmp_path / "run" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"status": "complete"}))
    logger.attach_record(path)
    logger.finish()
    assert json.loads((Path(run.dir) / "results.json").read_text()) == {"status": "complete"}
