"""Run untrusted model-written Python (HumanEval candidates) in a child process that cannot do much harm.

The child is a fresh `python -I` (isolated mode: no user site, no PYTHON* variables) in a new temporary
directory, with an environment of only PATH and dead proxies, rlimits on address space (1 GiB), CPU
seconds, file size and process count, a wall-clock timeout (killed with its process group), and — when
we are root and `unshare` exists — a network namespace with nothing in it. A process costs ~40 ms to
start, so HumanEval's 164 problems take ~10 s of sandbox overhead. It is not a security boundary
against a determined attacker (no seccomp, same user); it stops accidents and runaway loops.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

MEMORY_BYTES = 1 << 30
DEAD_PROXY = "http://127.0.0.1:9"


@dataclass
class SandboxResult:
    ok: bool          # exited 0 within the time limit
    returncode: int | None
    timed_out: bool
    output: str       # the last 2,000 characters of stdout+stderr


@functools.lru_cache(maxsize=1)
def _can_unshare_net() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _limits(timeout: float) -> None:  # runs in the child between fork and exec
    import resource

    os.setsid()
    for what, value in ((resource.RLIMIT_AS, MEMORY_BYTES), (resource.RLIMIT_CPU, int(timeout) + 1),
                        (resource.RLIMIT_FSIZE, 10 << 20), (resource.RLIMIT_NPROC, 256)):
        try:
            resource.setrlimit(what, (value, value))
        except (ValueError, OSError):
            pass


def run_python(code: str, timeout: float = 5.0) -> SandboxResult:
    env = {"PATH": "/usr/bin:/bin", "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "http_proxy": DEAD_PROXY,
           "https_proxy": DEAD_PROXY, "NO_PROXY": "", "no_proxy": "", "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory(prefix="nanochat-sandbox-") as tmp:
        path = os.path.join(tmp, "candidate.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
        cmd = [sys.executable, "-I", path]
        if _can_unshare_net():
            cmd = ["unshare", "-n", *cmd]
        env["HOME"] = env["TMPDIR"] = tmp
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, preexec_fn=lambda: _limits(timeout))
        try:
            out, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, _ = proc.communicate()
            timed_out = True
    text = out.decode("utf-8", "replace")[-2000:]
    return SandboxResult(not timed_out and proc.returncode == 0, proc.returncode, timed_out, text)
