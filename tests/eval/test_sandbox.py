"""HumanEval grading and the sandbox: the canonical solution passes, a wrong one fails, an endless loop is
killed at the timeout, memory is capped, and the network is unreachable."""

from __future__ import annotations

import time

from nanochat_cli.eval.humaneval import HumanEval, extract_program, load_problems
from nanochat_cli.eval.sandbox import run_python


def test_packaged_problems():
    problems = load_problems()
    assert len(problems) == 164 and problems[0]["task_id"] == "HumanEval/0"
    assert set(problems[0]) == {"task_id", "prompt", "entry_point", "canonical_solution", "test"}


def test_canonical_passes_wrong_fails():
    task = HumanEval(timeout=10)
    conv = task[2]
    assert task.evaluate(conv, conv["messages"][1]["content"]) == 1
    fenced = "Here you go:\n```python\n" + conv["messages"][1]["content"] + "\n```\nDone."
    assert task.evaluate(conv, fenced) == 1
    assert task.evaluate(conv, "def truncate_number(number):\n    return 0.0\n") == 0


def test_extract_first_code_block():
    assert extract_program("a\n```py\nx = 1\n```\n```python\ny = 2\n```") == "x = 1\n"
    assert extract_program("no block") == "no block"


def test_timeout_kills_a_loop():
    t0 = time.time()
    r = run_python("while True:\n    pass\n", timeout=1.0)
    assert not r.ok and r.timed_out and time.time() - t0 < 8


def test_memory_is_capped():
    r = run_python("x = bytearray(3 << 30)\nprint('allocated')\n", timeout=10)
    assert not r.ok and "MemoryError" in r.output


def test_no_network_and_clean_env():
    code = ("import os, socket\n"
            "assert 'NANOCHAT_HOME' not in os.environ and os.getcwd() == os.environ['HOME']\n"
            "s = socket.socket(); s.settimeout(2)\n"
            "try:\n    s.connect(('1.1.1.1', 80))\nexcept OSError:\n    raise SystemExit(0)\n"
            "raise SystemExit(1)\n")
    r = run_python(code, timeout=10)
    assert r.ok, r.output
