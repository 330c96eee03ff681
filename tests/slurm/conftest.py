"""Fixtures for the Slurm tests: a real two-node sandbox cluster (shared/tools/slurm-sandbox), a venv
stand-in that puts this checkout's `nanochat` on the job's PATH, and a bounded job waiter."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The script: $SLURM_SANDBOX_BIN, else shared/tools/slurm-sandbox in a parent directory (CI copies
# shared/ beside the clone, helpers' worktrees sit under /work next to /work/shared).
SANDBOX = os.environ.get("SLURM_SANDBOX_BIN") or next(
    (str(p / "shared/tools/slurm-sandbox") for p in Path(__file__).resolve().parents
     if (p / "shared/tools/slurm-sandbox").is_file()), None)

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED"}


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running two-node sandbox; SLURM_CONF etc. are set in os.environ."""
    if not SANDBOX:
        pytest.skip("shared/tools/slurm-sandbox not found beside the checkout; set SLURM_SANDBOX_BIN")
    if os.geteuid() != 0 or not (shutil.which("apt-get") or shutil.which("slurmctld")):
        pytest.skip("slurm-sandbox needs root and apt-get (or Slurm already installed)")
    up = subprocess.run([SANDBOX, "up"], capture_output=True, text=True, timeout=900)
    assert up.returncode == 0, f"slurm-sandbox up failed:\n{up.stderr}"
    env = subprocess.run([SANDBOX, "env"], capture_output=True, text=True, check=True).stdout
    with pytest.MonkeyPatch.context() as mp:
        for key, value in re.findall(r"^export (\w+)=(.*)$", env, re.M):
            mp.setenv(key, shlex.split(value)[0])
        yield Path(os.environ["SLURM_SANDBOX_DIR"])
    if "PYTEST_XDIST_WORKER" not in os.environ:  # xdist workers share one cluster
        subprocess.run([SANDBOX, "down"], check=False, capture_output=True)


def make_venv(where: Path) -> Path:
    """A directory shaped like a venv whose bin/activate puts this checkout's `nanochat` (and the running
    interpreter's torchrun) on PATH: what `slurm.venv` points at on a real cluster."""
    bindir = where / "bin"
    bindir.mkdir(parents=True)
    py = sys.executable
    (bindir / "activate").write_text(
        f"export PATH={shlex.quote(str(bindir))}:{shlex.quote(str(Path(py).parent))}:\"$PATH\"\n"
        f"export PYTHONPATH={shlex.quote(str(ROOT / 'src'))}\n")
    nanochat = bindir / "nanochat"
    nanochat.write_text(f'#!/bin/bash\nexec {shlex.quote(py)} -m nanochat_cli "$@"\n')
    nanochat.chmod(0o755)
    return where


def job_state(job_id: str) -> dict[str, str]:
    r = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    return dict(tok.split("=", 1) for tok in r.stdout.split() if "=" in tok)


def wait_for(job_id: str, pred, timeout: float, what: str) -> dict[str, str]:
    """Poll scontrol until pred(state) holds; cancel the job and fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        st = job_state(job_id)
        if pred(st):
            return st
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job_id], check=False)
            pytest.fail(f"job {job_id}: {what} not reached in {timeout:.0f} s; last state {st.get('JobState')} "
                        f"reason {st.get('Reason')}")
        time.sleep(0.3)


def wait_done(job_id: str, timeout: float = 120) -> dict[str, str]:
    return wait_for(job_id, lambda st: st.get("JobState") in FINAL_STATES, timeout, "a final state")


def preempt_and_wait(job_id: str, requeue_timeout: float, done_timeout: float) -> dict[str, str]:
    """What a preemption does: USR2 to the batch step, the job requeues itself (Restarts=1, PENDING); start it
    again in 2 s instead of Slurm's requeue delay, and wait for its final state."""
    subprocess.run(["scancel", "--batch", "--signal=USR2", job_id], check=True)
    wait_for(job_id, lambda s: s.get("Restarts") == "1" and s.get("JobState") == "PENDING", requeue_timeout,
             "the requeue")
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now+2"], check=True)
    return wait_done(job_id, timeout=done_timeout)


@pytest.fixture
def jobs():
    """Job ids a test submitted; any still queued or running are cancelled afterwards."""
    ids: list[str] = []
    yield ids
    for j in ids:
        subprocess.run(["scancel", j], check=False, capture_output=True)
