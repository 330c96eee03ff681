"""Data parallel: 2 torchrun (gloo) processes with accumulation 1 train like 1 process with accumulation 2
on the same global batches (same losses up to float summation order)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, cli_env, in_netns
from tests.train.conftest import tiny_config_file

WORKER = str(ROOT / "tests" / "train" / "ddp_worker.py")


def _env(home):
    env = cli_env({"NANOCHAT_HOME": str(home)})
    env["PYTHONPATH"] = str(ROOT) + ":" + env["PYTHONPATH"]  # the worker imports tests.train
    return env


@pytest.mark.slow
@pytest.mark.dist
def test_two_process_gloo_matches_single_process(tmp_path):
    cfg = tiny_config_file(tmp_path, iters=6, eval_every=0, save_every=3)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    r1 = subprocess.run([sys.executable, WORKER, str(one), str(cfg), str(tmp_path / "one.json")],
                        capture_output=True, text=True, env=_env(one), timeout=300)
    assert r1.returncode == 0, r1.stderr
    cmd = in_netns([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", WORKER,
                    str(two), str(cfg), str(tmp_path / "two.json")])
    r2 = subprocess.run(cmd, capture_output=True, text=True, env=_env(two), timeout=300)
    assert r2.returncode == 0, r2.stderr[-3000:]
    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "two.json").read_text())
    assert a["world"] == 1 and b["world"] == 2 and len(a["losses"]) == len(b["losses"]) == 6
    assert b["losses"] == pytest.approx(a["losses"], rel=1e-4, abs=1e-5)
    # Training moved the loss (so the comparison is not between two untrained models).
    assert a["losses"][-1] < a["losses"][0]
    # The 2-process checkpoint holds one optimizer file per rank.
    [ck] = list(two.glob("runs/*/checkpoints/base/step_000006"))
    assert sorted(p.name for p in ck.iterdir()) == ["meta.json", "model.safetensors", "optim_rank0.pt",
                                                     "optim_rank1.pt"]


@pytest.mark.slow
@pytest.mark.dist
def test_nproc_launches_workers_and_leaves_with_their_own_exit_code(home, tmp_path, run_cli):
    """`--nproc 2`: a SIGTERM to the command reaches the workers, which checkpoint (exit 75, not torchrun's 1); a
    second `train` of the run is the workers' one-line refusal, printed once, with their exit code 2. (The
    success path, one JSON document from rank 0, is test_speedrun's and test_eval_cli's `--nproc 2`.)"""
    import signal
    import time

    from tests.conftest import in_netns
    from tests.train.conftest import write_shards

    write_shards(home)
    cfg = tiny_config_file(tmp_path, iters=400, eval_every=0, save_every=0)
    # --run: torchrun's argparse once took it for an abbreviation of its own --run-path
    args = [sys.executable, "-m", "nanochat_cli", "train", "base", "--nproc", "2", "--run", "ddp-run",
            "--config", str(cfg)]
    p = subprocess.Popen(in_netns(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=cli_env({"NANOCHAT_HOME": str(home)}))
    metrics = home / "runs" / "ddp-run" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):  # two steps trained
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()[1][-3000:]
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)  # the launching process (unshare and sh exec into it)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 75, err[-3000:]
    assert "base: stopped by SIGTERM" in err and "Error:" not in err and "Traceback" not in err, err[-3000:]
    stopped = json.loads((home / "runs" / "ddp-run" / "manifest.json").read_text())["phases"]["base"]["step"]
    ck = home / "runs" / "ddp-run" / "checkpoints" / "base" / f"step_{stopped:06d}"
    assert {"optim_rank0.pt", "optim_rank1.pt"} <= {p.name for p in ck.iterdir()}
    meta = json.loads((ck / "meta.json").read_text())
    assert meta["world_size"] == 2 and len(meta["loader"]) == 2 and len(meta["rng"]) == 2

    r = run_cli("train", "base", "--nproc", "2", "--run", "ddp-run", "--config", str(cfg), netns=True)
    assert r.returncode == 2, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if "Error" in ln or "Traceback" in ln]
    assert errors == [f"Error: run 'ddp-run' has an unfinished base phase (checkpoint at step {stopped}) — fix: "
                      "continue it with `nanochat resume --run ddp-run`, or train into a new run with another --run "
                      "name"], r.stderr
    assert "ChildFailedError" not in r.stderr and "closing signal" not in r.stderr
