"""Exact resume, for real: `nanochat train base` in a subprocess, killed (SIGKILL) or preempted
(SIGUSR2) mid-run, then `nanochat resume`; the per-step losses must equal an uninterrupted run's
bit for bit (CPU). Also: a corrupt newest checkpoint is skipped with a message; preflight errors."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nanochat_cli.errors import EXIT_PREEMPTED
from nanochat_cli.paths import Paths
from nanochat_cli import checkpoint as ck
from nanochat_cli.train.resume import plan_resume
from tests.conftest import cli_env
from tests.train.conftest import losses, run_checkpoints, tiny_config_file, write_shards

ITERS = 30


def _start(home: Path, cfg_file: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nanochat_cli", "train", "base", "--config", str(cfg_file), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env({"NANOCHAT_HOME": str(home)}))


def _wait_for_step(home: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        for f in (home / "runs").glob("*/metrics.jsonl"):
            if f'"step": {step}, "loss"' in f.read_text():
                return
        if proc.poll() is not None:
            raise AssertionError(f"training ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError(f"step {step} never logged")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Losses of an uninterrupted run (computed once per module)."""
    h = tmp_path_factory.mktemp("ref") / "home"
    write_shards(h)
    cfg_file = tiny_config_file(h.parent, iters=ITERS, eval_every=10, save_every=4)
    r = subprocess.run([sys.executable, "-m", "nanochat_cli", "train", "base", "--config", str(cfg_file)],
                       capture_output=True, text=True, env=cli_env({"NANOCHAT_HOME": str(h)}), timeout=300)
    assert r.returncode == 0, r.stderr
    got = losses(h)
    assert sorted(got) == list(range(1, ITERS + 1))
    return got


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_is_bitwise_identical(data_home, tmp_path, reference, run_cli):
    cfg_file = tiny_config_file(tmp_path, iters=ITERS, eval_every=10, save_every=4)
    kill_at = random.Random().randint(6, ITERS - 3)
    p = _start(data_home, cfg_file)
    _wait_for_step(data_home, kill_at, p)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    manifest = json.loads(next((data_home / "runs").glob("*/manifest.json")).read_text())
    assert manifest["phases"]["base"]["status"] == "running"

    plan = plan_resume(Paths(data_home))  # what `resume --dry-run` prints
    assert [(s.phase, s.action) for s in plan.steps] == [("base", "resume")]
    assert plan.steps[0].from_step % 4 == 0 and plan.steps[0].from_step <= kill_at + 1

    r = run_cli("resume")
    assert r.returncode == 0, r.stderr
    assert "done at step 30/30" in r.stdout
    assert losses(data_home) == reference  # bitwise: floats compared with ==
    manifest = json.loads(next((data_home / "runs").glob("*/manifest.json")).read_text())
    assert manifest["phases"]["base"]["status"] == "done"


@pytest.mark.slow
def test_sigusr2_saves_at_the_next_step_and_exits_75_then_resume_matches(data_home, tmp_path, reference, run_cli):
    cfg_file = tiny_config_file(tmp_path, iters=ITERS, eval_every=10, save_every=0)  # only the signal saves
    p = _start(data_home, cfg_file)
    _wait_for_step(data_home, 7, p)
    p.send_signal(signal.SIGUSR2)
    out, err = p.communicate(timeout=120)
    assert p.returncode == EXIT_PREEMPTED, err
    assert "stopped by SIGUSR2" in err and "nanochat resume" in err
    ckdir = run_checkpoints(data_home)
    saved = ck.latest_valid_step(ckdir)
    assert saved is not None and 7 <= saved < ITERS
    manifest = json.loads(next((data_home / "runs").glob("*/manifest.json")).read_text())
    assert manifest["phases"]["base"]["status"] == "interrupted" and manifest["phases"]["base"]["step"] == saved
    r = run_cli("resume")
    assert r.returncode == 0, r.stderr
    assert losses(data_home) == reference


@pytest.mark.slow
def test_corrupt_newest_checkpoint_falls_back_to_previous(data_home, tmp_path, reference, run_cli):
    cfg_file = tiny_config_file(tmp_path, iters=ITERS, eval_every=10, save_every=4)
    p = _start(data_home, cfg_file)
    _wait_for_step(data_home, 17, p)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    ckdir = run_checkpoints(data_home)
    newest = ck.latest_valid_step(ckdir)
    w = ckdir / ck.step_dir_name(newest) / "model.safetensors"
    w.write_bytes(w.read_bytes()[: len(w.read_bytes()) // 2])  # a torn write
    r = run_cli("resume")
    assert r.returncode == 0, r.stderr
    assert f"step_{newest:06d}" in r.stderr and "checksum mismatch" in r.stderr
    assert f"previous valid one, step {newest - 4}" in r.stderr
    assert losses(data_home) == reference


def test_nothing_to_resume_is_a_usage_error(run_cli):
    r = run_cli("resume")
    assert r.returncode == 2 and "nothing to resume" in r.stderr and "nanochat train base" in r.stderr


def test_missing_shards_is_a_preflight_error(home, tmp_path, run_cli):
    r = run_cli("train", "base", "--config", str(tiny_config_file(tmp_path)))
    assert r.returncode == 3, r.stderr
    assert "nanochat data fetch base" in r.stderr and "Traceback" not in r.stderr


def test_missing_bpe_tokenizer_is_a_preflight_error(data_home, tmp_path, run_cli):
    cfg_file = tiny_config_file(tmp_path)
    cfg_file.write_text(cfg_file.read_text().replace('kind = "byte"', 'kind = "bpe"'))
    r = run_cli("train", "base", "--config", str(cfg_file))
    assert r.returncode == 3, r.stderr
    assert "nanochat tokenizer train" in r.stderr and "Traceback" not in r.stderr


def test_resume_from_mid_without_base_checkpoint_is_a_preflight_error(run_cli):
    r = run_cli("resume", "--from", "mid", "--dry-run")
    assert r.returncode == 3 and "nanochat train base" in r.stderr
