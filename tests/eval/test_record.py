"""Standalone `nanochat eval ...` results land in the checkpoint's run (manifest `evals`, metrics.jsonl) in
the speedrun's shapes, so `nanochat report` shows them."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.eval.bundle import make_bundle
from tests.eval.conftest import save_tiny_checkpoint


def test_eval_core_and_chat_are_recorded_and_reported(run_cli, home):
    save_tiny_checkpoint(home, "base")
    save_tiny_checkpoint(home, "sft")
    shutil.copytree(make_bundle(home / "tmp"), home / "eval_bundle")
    r = run_cli("eval", "core", "--max-per-task", "10", "--json")
    assert r.returncode == 0, r.stderr
    core = json.loads(r.stdout)
    r = run_cli("eval", "chat", "-i", "sft", "--max-problems", "1", "--json")
    assert r.returncode == 0, r.stderr
    chat = json.loads(r.stdout)
    run = home / "runs" / "test"
    evals = json.loads((run / "manifest.json").read_text())["evals"]
    assert evals["base_core"]["core"] == pytest.approx(core["core"]) and evals["base_core"]["step"] == 10
    assert evals["sft_chat"]["tasks"].keys() == chat["tasks"].keys()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["model"] for x in lines if x["phase"] == "eval"] == ["base", "sft"]
    assert "core/arc_easy" in lines[0]
    r = run_cli("report")
    assert r.returncode == 0, r.stderr
    assert f"{core['core']:.4f}" in (run / "report.md").read_text()
