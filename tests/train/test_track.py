"""Tracking: real wandb in offline mode writes a syncable run under <home>/wandb with the logged metrics
and touches no network; metrics.jsonl always; placeholder run names never change what runs."""

from __future__ import annotations

import json

import pytest

from nanochat_cli.track import read_metrics, truncate_metrics
from nanochat_cli.errors import UsageError
from nanochat_cli.runs import new_run_name
from tests.train.conftest import tiny_config_file


def test_wandb_offline_run_has_the_metrics_and_a_placeholder_name_changes_nothing(data_home, tmp_path, run_cli):
    cfg = tiny_config_file(tmp_path, iters=5, eval_every=5, save_every=0)
    r = run_cli("train", "base", "--config", str(cfg), "--wandb", "offline", "--run", "dummy", "--json", netns=True,
                env={"WANDB_API_KEY": "", "WANDB_BASE_URL": "http://127.0.0.1:9"})
    assert r.returncode == 0, r.stderr
    assert "placeholder" in r.stderr
    result = json.loads(r.stdout)
    assert result["status"] == "done" and result["step"] == 5 and result["run_id"] != "dummy"
    run_dir = data_home / "runs" / result["run_id"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert list(manifest["phases"]) == ["base"] and manifest["phases"]["base"]["status"] == "done"
    losses = [x["loss"] for x in read_metrics(run_dir / "metrics.jsonl") if "loss" in x]
    assert len(losses) == 5

    runs = list((data_home / "wandb").glob("wandb/offline-run-*"))
    assert len(runs) == 1, runs
    blobs = list(runs[0].glob("run-*.wandb"))
    assert len(blobs) == 1 and result["run_id"] in blobs[0].name
    data = blobs[0].read_bytes()
    assert b"base/loss" in data and b"base/val_bpb" in data
    for v in losses:
        assert json.dumps(v).encode() in data  # every logged value is in the offline run file
    logs = "".join(p.read_text(errors="replace") for p in runs[0].glob("logs/*.log"))
    assert "api.wandb.ai" not in logs


def test_disabled_wandb_writes_nothing_under_wandb(data_home, tmp_path, run_cli):
    cfg = tiny_config_file(tmp_path, iters=2, eval_every=0, save_every=0)
    r = run_cli("train", "base", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert not (data_home / "wandb").exists()
    assert len(list((data_home / "runs").glob("*/metrics.jsonl"))) == 1


def test_run_names(capsys):
    assert new_run_name("d20-v1.2_b") == "d20-v1.2_b"
    with pytest.raises(UsageError, match="not a valid run name"):
        new_run_name("my run/1")  # refused, never silently rewritten (it would collide with my-run-1)
    for name in ("", "dummy", " DUMMY ", "test", None):
        rid = new_run_name(name)
        assert rid and rid.lower() not in ("dummy", "test", "")
    assert capsys.readouterr().err.count("looks like a placeholder") == 3


def test_truncate_metrics_drops_records_after_the_resume_step_and_torn_lines(tmp_path):
    p = tmp_path / "metrics.jsonl"
    recs = [{"phase": "base", "step": s, "loss": 1.0} for s in range(1, 6)] + [{"phase": "mid", "step": 9}]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"phase": "base", "st')
    truncate_metrics(p, "base", 3)
    assert [(r["phase"], r["step"]) for r in read_metrics(p)] == [("base", 1), ("base", 2), ("base", 3), ("mid", 9)]
