"""Interop tests: one torch thread, transformers offline, and a CLI runner for a home shared by a module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env
from tests.threads import one_thread  # noqa: F401  (autouse for this folder)

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(autouse=True, scope="session")
def _offline():
    old = {k: os.environ.get(k) for k in OFFLINE}
    os.environ.update(OFFLINE)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def cli(home: Path, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`nanochat ARGS` in a subprocess against `home` (offline, no NANOCHAT_* from outside)."""
    base = {k: v for k, v in cli_env({**OFFLINE, "NANOCHAT_HOME": str(home), **(env or {})}).items()
            if not k.startswith("NANOCHAT_") or k == "NANOCHAT_HOME"}
    return subprocess.run([sys.executable, "-m", "nanochat_cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=base)


def one_line_error(r: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single stderr line of a refused command (asserting exit code, no traceback, nothing on stdout)."""
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]
