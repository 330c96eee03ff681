"""`nanochat eval core|bpb` through the CLI on saved checkpoints, and CORE under torchrun (2 gloo ranks)
equal to one process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import cli_env, in_netns, needs_read_only_mount
from tests.eval.bundle import make_bundle
from tests.eval.conftest import save_tiny_checkpoint
from tests.eval.test_suite import write_shards

ENV = {"NANOCHAT_TRAIN__THREADS": "1", "NANOCHAT_TRAIN__DEVICE": "cpu", "NANOCHAT_EVAL__CORE_MAX_PER_TASK": "7"}


def test_eval_core_cli_table_and_json(run_cli, home):
    save_tiny_checkpoint(home, "base", seq_len=256)
    make_bundle(home, rows=9)
    r = run_cli("eval", "core", "--json", env=ENV)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["metric"] == "CORE" and set(doc["tasks"]) == {"arc_easy", "winograd", "lambada_openai"}
    assert all(t["rows"] == 7 for t in doc["tasks"].values()) and doc["step"] == 10
    r = run_cli("eval", "core", "--max-per-task", "5", env=ENV)
    assert r.returncode == 0, r.stderr
    assert "arc_easy" in r.stdout
    assert "CORE " in r.stdout.splitlines()[-1]


def test_eval_core_without_bundle_exit_3(run_cli, home):
    save_tiny_checkpoint(home, "base", seq_len=256)
    r = run_cli("eval", "core", env=ENV)
    assert r.returncode == 3 and "nanochat data fetch eval" in r.stderr


def test_eval_bpb_cli(run_cli, home):
    save_tiny_checkpoint(home, "base", seq_len=256)
    write_shards(home)
    r = run_cli("eval", "bpb", "--json", env={**ENV, "NANOCHAT_EVAL__BPB_TOKENS": "4096"})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["metric"] == "bpb" and 0 < doc["bpb"] < 20


@pytest.mark.dist
def test_core_two_ranks_equals_one(run_cli, home):
    save_tiny_checkpoint(home, "base", seq_len=256)
    make_bundle(home, rows=9)
    one = run_cli("eval", "core", "--json", env=ENV)
    assert one.returncode == 0, one.stderr
    two = run_cli("eval", "core", "--nproc", "2", "--json", env=ENV, netns=True)  # launched by the command
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # one document: only rank 0 prints
    assert b["world_size"] == 2
    for k in a["tasks"]:
        assert a["tasks"][k]["accuracy"] == pytest.approx(b["tasks"][k]["accuracy"], abs=1e-9)
    assert a["core"] == pytest.approx(b["core"], abs=1e-9)


@pytest.mark.dist
def test_bpb_failing_on_one_rank_fails_on_every_rank_in_step(tmp_path):
    """Periodic validation that fails on one rank only must not leave the other waiting in its all_reduce
    (training logs eval errors and goes on, so the ranks would fall out of step)."""
    from tests.conftest import ROOT

    worker = str(ROOT / "tests" / "eval" / "bpb_dist_worker.py")
    env = cli_env()
    cmd = in_netns([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", worker,
                    str(tmp_path)])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    outs = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert outs[0]["bpb"] == outs[1]["bpb"] and outs[0]["bpb"] > 0  # one sum over both ranks
    for o in outs:
        assert o["error"] == ("RuntimeError: validation failed (rank 1: OSError: validation shard unreadable "
                              "(injected)); skipped on every rank"), o
        assert o["next_collective"] == 3.0  # 1 + 2: the ranks met in the same collective


@needs_read_only_mount
@pytest.mark.parametrize("args", [["eval", "bpb"], ["eval", "core"], ["eval", "chat", "-i", "sft", "-a", "quiz"]],
                         ids=["bpb", "core", "chat"])
def test_a_read_only_home_is_exit_2_before_any_compute(run_cli, home, args):
    """The result is recorded in the checkpoint's run: check that it can be written before evaluating."""
    save_tiny_checkpoint(home, "sft" if "chat" in args else "base", seq_len=256)
    write_shards(home)
    make_bundle(home, rows=9)
    r = run_cli(*args, env={**ENV, "NANOCHAT_EVAL__BPB_TOKENS": "4096", "NANOCHAT_EVAL__CHAT_MAX_PROBLEMS": "3"},
                read_only_dir=home)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot write to the run directory" in r.stderr and "Read-only file system" in r.stderr
    assert r.stdout == ""


def test_a_negative_step_is_a_usage_error(run_cli, home):
    r = run_cli("eval", "bpb", "--step", "-1")
    assert r.returncode == 2 and "--step" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
