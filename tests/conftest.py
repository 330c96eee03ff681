"""Shared fixtures: an isolated NANOCHAT_HOME per test, a CLI runner in a subprocess (the way a user
runs it), no network (loopback only), and a helper to run a command in a fresh network namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Nothing leaves the machine: datasets' download counter and any stray proxy-less request are cut off.
NO_NETWORK_ENV = {
    "HF_UPDATE_DOWNLOAD_COUNTS": "0",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_XET": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_SILENT": "true",
    "WANDB_DISABLE_GIT": "true",
    # Any HTTP(S) request that is not to loopback goes to a dead port.
    "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
}


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except Exception:
        return False


CAN_UNSHARE = _can_unshare()


def in_netns(cmd: list[str]) -> list[str]:
    """Wrap a command so it runs in a fresh network namespace with only loopback (when root); torchrun's
    reverse-DNS lookups and any stray connection then cannot leave the machine."""
    if not CAN_UNSHARE:
        return cmd
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]


def _can_mount_read_only() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    import tempfile

    d = tempfile.mkdtemp(prefix="ro-probe.")
    try:
        probe = 'mount --bind -o ro "$0" "$0" && ! touch "$0/x" 2>/dev/null'
        return subprocess.run(["unshare", "-m", "sh", "-c", probe, d], capture_output=True, timeout=10).returncode == 0
    except Exception:
        return False
    finally:
        shutil.rmtree(d, ignore_errors=True)


CAN_MOUNT_READ_ONLY = _can_mount_read_only()
needs_read_only_mount = pytest.mark.skipif(
    not CAN_MOUNT_READ_ONLY, reason="needs root and `unshare -m` to bind-mount a directory read-only (as root, "
                                    "chmod cannot make a directory read-only)")


def read_only(path: Path, cmd: list[str]) -> list[str]:
    """Wrap a command so it sees `path` as a read-only mount (a bind mount in its own mount namespace: the
    rest of the machine, and this test, still see `path` writable)."""
    return ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(path), *cmd]


@pytest.fixture
def seeded():
    """Python's, NumPy's and torch's global RNGs seeded with 0, so a test's random inputs are the same on
    every run (the one seeding fixture; tests needing another seed draw from a torch.Generator)."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh NANOCHAT_HOME, with every NANOCHAT_* variable of the outer environment removed."""
    h = tmp_path / "home"
    h.mkdir()
    for k in list(os.environ):
        if k.startswith("NANOCHAT_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("NANOCHAT_HOME", str(h))
    for k, v in NO_NETWORK_ENV.items():
        monkeypatch.setenv(k, v)
    return h


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()}
    env.update(NO_NETWORK_ENV)
    # When the suite runs from a checkout without install, the subprocess still finds the package.
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


@pytest.fixture
def run_cli(home):
    """Run `nanochat ARGS...` as a subprocess; returns CompletedProcess (text)."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600, netns: bool = False,
            input: str | None = None, cwd: Path | None = None,
            read_only_dir: Path | None = None) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "nanochat_cli", *args]
        if read_only_dir is not None:
            cmd = read_only(read_only_dir, cmd)
        if netns:
            cmd = in_netns(cmd)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input,
                              env=cli_env({"NANOCHAT_HOME": str(home), **(env or {})}), cwd=cwd)

    return run


@pytest.fixture(autouse=True)
def _reset_torch_state():
    """Tests that touch torch must not leak default dtype or a process group into the next test."""
    yield
    if "torch" in sys.modules:
        import torch

        torch.set_default_dtype(torch.float32)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
