"""The reproductions of "nothing trained is ever lost or hidden", as a user meets them: real `nanochat train`
processes on one home. Two runs side by side keep two models; a second writer to one run is refused while the
first trains; a failed run hides nothing; an interrupted run stays resumable after another run; the same
--run is never trained twice; Ctrl-C saves; kill -9 at any instant of a save never leaves a torn checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nanochat_cli import checkpoint as ck
from nanochat_cli.paths import Paths
from nanochat_cli.train.resume import plan_resume
from tests.conftest import cli_env
from tests.train.conftest import tiny_config_file

pytestmark = pytest.mark.usefixtures("data_home")


def start(home: Path, cfg: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nanochat_cli", "train", "base", "--config", str(cfg), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env({"NANOCHAT_HOME": str(home)}))


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def logged_step(home: Path, run: str, step: int) -> bool:
    f = home / "runs" / run / "metrics.jsonl"
    return f.is_file() and f'"step": {step}, "loss"' in f.read_text()


def weights_sha(home: Path, run: str) -> str:
    steps = ck.list_steps(Paths(home).run_checkpoints(run, "base"))
    path = Paths(home).run_checkpoints(run, "base") / ck.step_dir_name(steps[-1]) / ck.MODEL_FILE
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_runs_side_by_side_keep_two_models(home, tmp_path, run_cli):
    cfg = tiny_config_file(tmp_path, iters=6, eval_every=0, save_every=3)
    a, b = start(home, cfg, "--run", "runA"), start(home, cfg, "--run", "runB", "--seed", "7")
    assert a.wait(300) == 0 and b.wait(300) == 0, a.stderr.read() + b.stderr.read()
    assert weights_sha(home, "runA") != weights_sha(home, "runB")
    for run in ("runA", "runB"):
        r = run_cli("chat", "-i", "base", "--run", run, "-p", "The", "--max-tokens", "3")
        assert r.returncode == 0 and f"run {run}, step 6 (finished)" in r.stderr, r.stderr


def test_a_second_writer_of_one_run_is_refused_and_ctrl_c_saves(home, tmp_path, run_cli):
    cfg = tiny_config_file(tmp_path, iters=100000, eval_every=0, save_every=0)
    first = start(home, cfg, "--run", "same")
    try:
        wait_for(lambda: logged_step(home, "same", 2), first)
        second = run_cli("train", "base", "--config", str(cfg), "--run", "same")
        assert second.returncode == 3, second.stderr
        assert second.stderr.count("\n") == 1 and f"pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGINT)  # what Ctrl-C does
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 130, err
    steps = ck.list_steps(Paths(home).run_checkpoints("same", "base"))
    assert len(steps) == 1 and f"stopped by Ctrl-C at step {steps[0]}" in err
    assert f"checkpoint {Paths(home).run_checkpoints('same', 'base') / ck.step_dir_name(steps[0])}" in err
    assert "nanochat resume --run same" in err and "Traceback" not in err
    assert json.loads((home / "runs" / "same" / "manifest.json").read_text())["phases"]["base"]["status"] == \
        "interrupted"
    # the same name again, with the first process gone: refused (it would train over an unfinished run)
    again = run_cli("train", "base", "--config", str(cfg), "--run", "same")
    assert again.returncode == 2 and "nanochat resume --run same" in again.stderr, again.stderr


def test_a_failed_run_hides_nothing_and_an_interrupted_run_stays_resumable(home, tmp_path, run_cli):
    cfg = tiny_config_file(tmp_path, iters=8, eval_every=0, save_every=2)
    p = start(home, cfg, "--run", "interrupted1")
    wait_for(lambda: logged_step(home, "interrupted1", 5), p)
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    done = run_cli("train", "base", "--config", str(cfg), "--run", "good")
    assert done.returncode == 0, done.stderr
    shards = sorted((home / "base_data").glob("*.parquet"))
    saved = {s: s.read_bytes() for s in shards}
    for s in shards:
        s.write_bytes(b"")  # a corrupt data directory: the next run fails
    bad = run_cli("train", "base", "--config", str(cfg), "--run", "bad")
    assert bad.returncode != 0
    for s, data in saved.items():
        s.write_bytes(data)
    r = run_cli("chat", "-i", "base", "-p", "The", "--max-tokens", "3")
    assert r.returncode == 0 and "run good, step 8 (finished)" in r.stderr, r.stderr
    plan = plan_resume(Paths(home), run="interrupted1")
    assert [(s.phase, s.action) for s in plan.steps] == [("base", "resume")] and plan.steps[0].from_step >= 4
    r = run_cli("resume", "--run", "interrupted1")
    assert r.returncode == 0 and "done at step 8/8" in r.stdout, r.stderr
    # and the finished run cannot be trained over
    r = run_cli("train", "base", "--config", str(cfg), "--run", "good")
    assert r.returncode == 2 and "already trained base" in r.stderr and r.stderr.count("\n") == 1


def test_kill_9_at_every_instant_of_a_save_never_leaves_a_torn_checkpoint(home, tmp_path):
    """A child saves step 1, then is SIGKILLed at the k-th file-system operation of saving step 2, for every
    k: afterwards every step_* directory verifies, and the newest valid one loads."""
    code = r"""
import os, signal, sys
from pathlib import Path
import torch
from nanochat_cli import checkpoint as ck
d, k = Path(sys.argv[1]), int(sys.argv[2])
state = {"w": torch.arange(100000, dtype=torch.float32)}
ck.save_checkpoint(d, 1, state, [{"m": torch.ones(10)}], {"run_id": "r"})
n = [0]
def trip(real):
    def wrapped(*a, **kw):
        n[0] += 1
        if n[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **kw)
    return wrapped
os.fsync, os.rename, os.replace = trip(os.fsync), trip(os.rename), trip(os.replace)
ck.save_checkpoint(d, 2, state, [{"m": torch.ones(10)}], {"run_id": "r"}, keep_last=1)
print("finished", n[0])
"""
    k, killed = 1, 0
    while True:
        d = tmp_path / f"k{k}"
        r = subprocess.run([sys.executable, "-c", code, str(d), str(k)], capture_output=True, text=True,
                           env=cli_env(), timeout=120)
        for step in ck.list_steps(d):
            assert ck.verify_checkpoint(d / ck.step_dir_name(step)) is None, (k, step)
        assert ck.load_checkpoint(d, quiet=True).step in (1, 2)
        if r.returncode == 0:
            break
        assert r.returncode == -signal.SIGKILL, r.stderr
        killed += 1
        k += 1
    assert killed >= 5  # every fsync/rename of a save was a kill point


def test_a_read_only_home_is_one_line_before_any_compute(home, tmp_path):
    if os.geteuid() != 0 or not Path("/usr/bin/unshare").exists():
        pytest.skip("needs root for a private read-only bind mount")
    cfg = tiny_config_file(tmp_path, iters=2)
    script = (f'mount --bind "{home}" "{home}" && mount -o remount,bind,ro "{home}" && '
              f'exec {sys.executable} -m nanochat_cli train base --config "{cfg}"')
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                       text=True, env=cli_env({"NANOCHAT_HOME": str(home)}), timeout=120)
    assert r.returncode == 2 and "cannot write to" in r.stderr and r.stderr.count("\n") == 1, r.stderr
