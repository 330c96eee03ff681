"""Eval results land in the checkpoint's run (manifest `evals` + metrics.jsonl); the base mini-suite is a
real-format bundle scored by the CORE code and never reported as CORE; CORE under torchrun (2 gloo ranks)
equals one process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from nanochat_cli.eval import core
from nanochat_cli.eval.mini_suite import TASKS, write_mini_bundle
from tests.conftest import cli_env, in_netns
from tests.eval.bundle import make_bundle
from tests.eval.conftest import save_tiny_checkpoint


def test_mini_suite_is_a_core_format_bundle(tmp_path):
    b = write_mini_bundle(tmp_path / "mini")
    specs = core.load_bundle(b)
    assert {s.task_type for s in specs} == {"multiple_choice", "schema", "language_modeling"}
    assert [s.baseline for s in specs] == [t[5] / 100 for t in TASKS]
    for s in specs:
        rows = core.load_rows(b, s)
        assert len(rows) > s.num_fewshot
    again = write_mini_bundle(tmp_path / "again")
    for s in specs:  # deterministic
        assert (b / "eval_data" / s.uri).read_bytes() == (again / "eval_data" / s.uri).read_bytes()


def test_mini_suite_result_has_no_core_key(model_tok):
    from nanochat_cli.eval.mini_suite import evaluate_mini_suite

    model, tok = model_tok
    res = evaluate_mini_suite(model, tok, "cpu", max_per_task=6)
    assert "core" not in res and res["metric"] == "mini-suite"
    assert res["mini_suite"] == pytest.approx(sum(t["centered"] for t in res["tasks"].values()) / 3)


def test_eval_core_records_in_run_and_mini_fallback(run_cli, home):
    save_tiny_checkpoint(home, "base")
    # cpu-tiny (embedded data), no bundle: auto = mini-suite, said on stderr, recorded as mini
    r = run_cli("eval", "core", "--max-per-task", "5", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["metric"] == "mini-suite" and "core" not in res
    run = home / "runs" / "test"
    m = json.loads((run / "manifest.json").read_text())
    assert m["evals"]["mini/base"]["mini_suite"] == pytest.approx(res["mini_suite"])
    # with the bundle present: CORE, recorded beside it
    shutil.copytree(make_bundle(home / "tmp"), home / "eval_bundle")
    r = run_cli("eval", "core", "--max-per-task", "10", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    m = json.loads((run / "manifest.json").read_text())
    assert m["evals"]["core/base"]["core"] == pytest.approx(res["core"]) and "mini/base" in m["evals"]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines if x.get("phase") == "eval"] == ["mini", "core"]
    assert "arc_easy/accuracy" in lines[-1]
    r = run_cli("eval", "core", "--suite", "bogus")
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.dist
def test_core_two_ranks_equal_one(run_cli, home):
    save_tiny_checkpoint(home, "base")
    shutil.copytree(make_bundle(home / "tmp"), home / "eval_bundle")
    one = json.loads(run_cli("eval", "core", "--max-per-task", "10", "--json").stdout)
    cmd = in_netns([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "nanochat_cli", "eval", "core", "--max-per-task", "10", "--json"])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=cli_env({"NANOCHAT_HOME": str(home), "OMP_NUM_THREADS": "1"}))
    assert r.returncode == 0, r.stderr[-2000:]
    two = json.loads(r.stdout)  # exactly one JSON document: only rank 0 prints
    assert {k: v["accuracy"] for k, v in two["tasks"].items()} == {k: v["accuracy"] for k, v in one["tasks"].items()}
    assert two["core"] == pytest.approx(one["core"])
