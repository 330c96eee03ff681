"""HumanEval problems from the package and the sandbox: the canonical solution passes, wrong code fails,
loops time out, memory hogs and network access fail, files stay in the temp dir."""

from __future__ import annotations

from nanochat_cli.eval.humaneval import HumanEval, build_program, extract_code, load_problems, run_program


def test_problems_and_canonical_solution_passes():
    problems = load_problems()
    assert len(problems) == 164 and problems[0]["task_id"] == "HumanEval/0"
    task = HumanEval(stop=2)
    conv = task[0]
    p = problems[0]
    reply = "Here it is:\n```python\n" + p["prompt"] + p["canonical_solution"] + "```\n"
    assert task.evaluate(conv, reply) == 1
    assert task.evaluate(conv, "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```") == 0


def test_extract_code_prefers_first_fence():
    assert extract_code("a\n```python\nx = 1\n```\n```\ny\n```") == "x = 1\n"
    assert extract_code("x = 2") == "x = 2"


def test_sandbox_limits(tmp_path):
    assert run_program("while True: pass", timeout=1.0) == (False, "timeout")
    ok, why = run_program("x = bytearray(4 << 30)", timeout=5.0)
    assert not ok and "MemoryError" in why
    ok, _ = run_program("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=3)", timeout=8.0)
    assert not ok
    ok, _ = run_program("import os\nopen('marker.txt', 'w').write('x')\nassert os.path.exists('marker.txt')")
    assert ok and not (tmp_path / "marker.txt").exists()
    assert run_program("raise SystemExit(3)")[0] is False


def test_build_program_keeps_prompt_imports():
    p = {"prompt": "from typing import List\n\n\ndef f(x: List[int]) -> int:\n", "test": "def check(c):\n    assert c([1]) == 1\n",
         "entry_point": "f"}
    prog = build_program(p, "def f(x):\n    return x[0]\n")
    assert prog.startswith("from typing import List") and prog.rstrip().endswith("check(f)")
    assert run_program(prog)[0]
