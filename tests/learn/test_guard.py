"""The learner's code cannot hang `learn step` or end it: an endless loop (at import or in a component) is
stopped at the time limit and named like any other error; sys.exit / os._exit / exit() are reported, never
"all components match". In-process through check.run_step (an untrapped os._exit would end pytest
itself), and through the real CLI for the exit code, the output and the hard stop."""

from __future__ import annotations

import os
import signal
import time

import pytest

from nanochat_cli.learn import check, guard, source
from nanochat_cli.learn.components import BY_NAME

LOOP = "while True:\n    pass\n"


def _plant(text: str, component: str, body: str) -> str:
    comp = BY_NAME[component]
    return source.replace(text, source.locate(text, comp), body, region=comp.name if comp.is_region else None)


def _at_import(text: str, code: str) -> str:
    return text.replace("import torch\n", "import torch\n" + code, 1)


def _line_of(path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip() == needle)


def test_endless_loop_at_import_is_stopped_and_named(complete_text, ws_file):
    ws_file.write_text(_at_import(complete_text, LOOP))
    t0 = time.monotonic()
    report = check.run_step(ws_file, time_limit=1.0)
    assert time.monotonic() - t0 < 8  # stopped at the limit, not run forever
    f = report.findings[0]
    assert not report.complete and f.kind == "error" and f.component is None
    assert f.message.startswith("importing gpt.py: still running after 1 s"), f.message
    assert f.where == f"gpt.py:{_line_of(ws_file, 'while True:')}" and f.inputs == {}


def test_endless_loop_in_a_component_is_stopped_and_named(complete_text, ws_file):
    ws_file.write_text(_plant(complete_text, "mlp", "h = self.c_fc(x)\n" + LOOP + "return h"))
    report = check.run_step(ws_file, time_limit=1.0)
    f = report.findings[0]
    assert (f.kind, f.component) == ("error", "mlp"), f
    assert "still running after 1 s" in f.message and f.message.startswith("the forward pass")
    assert f.where == f"gpt.py:{_line_of(ws_file, 'while True:')}" and "x" in f.inputs
    assert report.results["mlp"][0] == "failing"


@pytest.mark.parametrize("code,called", [("import sys\nsys.exit(0)\n", "sys.exit(0)"),
                                         ("import os\nos._exit(0)\n", "os._exit(0)"),
                                         ("from os import _exit\n_exit(3)\n", "os._exit(3)"),
                                         ("exit()\n", "sys.exit(")])
def test_exit_at_import_is_reported(complete_text, ws_file, code, called):
    ws_file.write_text(_at_import(complete_text, code))
    report = check.run_step(ws_file)  # an os._exit that got through would end this test process here
    f = report.findings[0]
    assert not report.complete and f.kind == "error", f
    assert f.message.startswith(f"importing gpt.py: {called}") and "was called" in f.message, f.message


@pytest.mark.parametrize("code,called", [("import os; os._exit(0)", "os._exit(0)"),
                                         ("raise SystemExit(0)", "sys.exit(0)")])
def test_exit_inside_a_component_is_reported(complete_text, ws_file, code, called):
    ws_file.write_text(_plant(complete_text, "attention", code))
    for stop_first in (True, False):  # learn step, and learn status/check
        report = check.run_step(ws_file, stop_first=stop_first)
        f = report.findings[0]
        assert (f.kind, f.component) == ("error", "attention") and called in f.message, f
        assert not report.complete and report.results["attention"][0] == "failing"


def test_the_guard_leaves_the_process_as_it_found_it(complete_text, ws_file):
    """Exits work again afterwards, and an alarm someone else set (pytest-timeout's) is handed back."""
    seen = []
    previous = signal.signal(signal.SIGALRM, lambda *a: seen.append(a[0]))
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        ws_file.write_text(_at_import(complete_text, LOOP))
        check.run_step(ws_file, time_limit=0.5)
        assert os._exit is guard._REAL["_exit"] and os.abort is guard._REAL["abort"]
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 20 < remaining <= 30 and seen == []
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        time.sleep(0.3)
        assert seen == [signal.SIGALRM]  # the old handler is back in place
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _workspace(tmp_path, text: str):
    ws = tmp_path / "w"  # a gpt.py is all `learn step` needs; `learn init` would cost a second
    ws.mkdir()
    (ws / "gpt.py").write_text(text)
    return ws


def test_cli_stops_a_loop_and_names_it(run_cli, complete_text, tmp_path):
    ws = _workspace(tmp_path, _plant(complete_text, "mlp", LOOP + "return x"))
    t0 = time.monotonic()
    r = run_cli("learn", "step", str(ws), "--time-limit", "1")
    assert time.monotonic() - t0 < 30
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    assert r.stdout.startswith("ERROR in mlp (MLP) at gpt.py:"), r.stdout
    assert "still running after 1 s" in r.stdout and "match the reference" in r.stdout


def test_cli_reports_os_exit_and_never_claims_success(run_cli, complete_text, tmp_path):
    ws = _workspace(tmp_path, _at_import(complete_text, "import os\nos._exit(0)\n"))
    r = run_cli("learn", "step", str(ws))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout.startswith("ERROR in your model at gpt.py:") and "os._exit(0) was called" in r.stdout
    assert "All components match" not in r.stdout


def test_cli_ends_code_that_swallows_the_stop(run_cli, complete_text, tmp_path):
    stubborn = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass\n"
    ws = _workspace(tmp_path, _plant(complete_text, "mlp", stubborn))
    r = run_cli("learn", "step", str(ws), "--time-limit", "1")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("Error:"), r.stderr
    assert "mlp at gpt.py:" in r.stderr and "except" in r.stderr
