"""HumanEval grading and the sandbox, against real processes and namespaces: the canonical solution passes,
a wrong one fails, a program that exits early never passes, and hostile programs (endless loops, daemons,
fork bombs, floods of output, snooping, signalling the evaluator, writing outside the work dir) are
contained. Properties every mode promises run in every mode this machine has; the namespace-only ones
run under `namespaces` and are skipped (with the reason) where the probe found it unusable."""

from __future__ import annotations

import os
import resource
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nanochat_cli.eval import sandbox
from nanochat_cli.eval.humaneval import HumanEval, extract_program, load_problems
from nanochat_cli.eval.sandbox import run_python

ROOT = os.geteuid() == 0
# The modes this user can ask for: root drops to nobody itself, a user relies on its own user namespace.
MODES = ("namespaces", "nobody") if ROOT else ("namespaces", "plain")


def _usable(mode: str) -> bool:
    try:
        return run_python("pass\n", 10, mode=mode).ok
    except sandbox.SandboxError:
        return False


@pytest.fixture(scope="module", params=MODES)
def mode(request) -> str:
    if not _usable(request.param):
        pytest.skip(f"sandbox mode {request.param} does not work here ({sandbox.isolation()})")
    return request.param


@pytest.fixture(scope="module")
def ns() -> str:
    if not _usable("namespaces"):
        pytest.skip(f"no usable namespaces here ({sandbox.isolation()}): the guarantees below need them")
    return "namespaces"


def _processes_with(tag: str) -> list[int]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if tag.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


# -- grading ---------------------------------------------------------------------------------------------

def test_packaged_problems():
    problems = load_problems()
    assert len(problems) == 164 and problems[0]["task_id"] == "HumanEval/0"
    assert set(problems[0]) == {"task_id", "prompt", "entry_point", "canonical_solution", "test"}


def test_extract_first_code_block():
    assert extract_program("a\n```py\nx = 1\n```\n```python\ny = 2\n```") == "x = 1\n"
    assert extract_program("no block") == "no block"


def test_canonical_passes_wrong_fails():
    task = HumanEval(timeout=10)
    conv = task[2]
    assert task.evaluate(conv, conv["messages"][1]["content"]) == 1
    fenced = "Here you go:\n```python\n" + conv["messages"][1]["content"] + "\n```\nDone."
    assert task.evaluate(conv, fenced) == 1
    assert task.evaluate(conv, "def truncate_number(number):\n    return 0.0\n") == 0


@pytest.mark.parametrize("early_exit", [
    "import os\nos._exit(0)\n",
    "raise SystemExit(0)\n",
    "import sys\nsys.exit(0)\n",
    "exit()\n",
    "print('ok')\nimport sys, os\nsys.stdout.flush()\nos._exit(0)\n",
])
def test_exiting_before_the_tests_is_not_a_pass(early_exit):
    task = HumanEval(timeout=10)
    conv = task[2]
    assert task.evaluate(conv, early_exit + "def truncate_number(number):\n    return 0.0\n") == 0


def test_exiting_inside_the_function_is_not_a_pass():
    task = HumanEval(timeout=10)
    conv = task[2]
    for body in ("import os; os._exit(0)", "raise SystemExit(0)"):
        assert task.evaluate(conv, f"def truncate_number(number):\n    {body}\n") == 0


def test_a_clean_exit_is_not_enough_the_program_must_reach_its_end(mode):
    assert run_python("x = 1\n", 10, mode=mode).ok
    r = run_python("import os\nos._exit(0)\nx = 1\n", 10, mode=mode)
    assert not r.ok and r.returncode == 0  # exit status 0, yet it never reached its end
    r = run_python("raise SystemExit(0)\n", 10, mode=mode)
    assert not r.ok and "exit(0)" in r.output


# -- every mode ------------------------------------------------------------------------------------------

def test_timeout_kills_a_loop(mode):
    t0 = time.monotonic()
    r = run_python("while True:\n    pass\n", timeout=1.0, mode=mode)
    assert not r.ok and r.timed_out and time.monotonic() - t0 < 5


def test_a_detached_child_holding_stdout_does_not_hold_the_call(mode):
    # Today's bug: fork() + setsid() escapes the process-group kill and keeps the pipe open, so a 1 s
    # limit waited for the child (20 s here, forever for a daemon).
    tag = f"20.{secrets.randbelow(10**6):06d}"  # the child's sleep time, unique: found by it afterwards
    holder = f"import os\nif os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', '{tag}'])\n"
    try:
        t0 = time.monotonic()
        r = run_python(holder + "while True:\n    pass\n", timeout=1.0, mode=mode)
        assert r.timed_out and not r.ok and time.monotonic() - t0 < 5
        t0 = time.monotonic()
        r = run_python(holder + "print('parent done')\n", timeout=10, mode=mode)
        assert r.ok and "parent done" in r.output and time.monotonic() - t0 < 5
        if mode == "namespaces":
            assert _processes_with(tag) == []  # died with the namespace
    finally:  # other modes say a setsid() child survives them; do not leave it to the next test
        for pid in _processes_with(tag):
            os.kill(pid, signal.SIGKILL)


def test_output_is_capped_and_the_evaluator_stays_small(mode):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    code = "import sys\nb = b'x' * (1 << 20)\nfor _ in range(400):\n    sys.stdout.buffer.write(b)\nprint('end')\n"
    r = run_python(code, timeout=60, mode=mode)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert r.ok and r.output_bytes == (400 << 20) + 4 and r.output.endswith("x" * 100 + "end\n")
    assert len(r.output) <= 2000
    assert grown_mib < 100, f"the evaluator grew by {grown_mib:.0f} MiB reading 400 MiB of output"


def test_fork_bomb_is_contained(mode):
    bomb = ("import os, time\nn = 0\ntry:\n    for _ in range(1000):\n        if os.fork() == 0:\n"
            "            time.sleep(30)\n            os._exit(0)\n        n += 1\n"
            "except OSError as e:\n    print('refused after', n, type(e).__name__)\nprint('forked', n)\n")
    r = run_python(bomb, timeout=20, mode=mode)
    assert "refused after" in r.output, r.output
    forked = int(r.output.split("forked")[-1])
    assert 0 < forked < 2 * sandbox.NPROC  # other processes of the same uid may come and go meanwhile


def test_memory_is_capped(mode):
    r = run_python("x = bytearray(3 << 30)\nprint('allocated')\n", timeout=10, mode=mode)
    assert not r.ok and "MemoryError" in r.output


def test_environment_is_scrubbed_and_the_work_dir_is_writable(mode):
    code = ("import os\nassert 'NANOCHAT_HOME' not in os.environ and os.getcwd() == os.environ['HOME']\n"
            "open('scratch.txt', 'w').write('hi')\nassert open('scratch.txt').read() == 'hi'\n")
    assert run_python(code, 10, mode=mode).ok


def _evaluator_with_secret(code: str, mode: str) -> str:
    """Run the sandbox from a fresh evaluator process whose environment holds a secret (os.environ edits
    never reach /proc/<pid>/environ, so the test process itself cannot stand in)."""
    driver = ("import os, sys\nfrom nanochat_cli.eval.sandbox import run_python\n"
              "r = run_python(sys.stdin.read().replace('EVALUATOR', str(os.getpid())), 10, mode=sys.argv[1])\n"
              "print(r.output)\n")
    env = {**os.environ, "NANOCHAT_TEST_SECRET": secrets.token_hex(8)}
    out = subprocess.run([sys.executable, "-c", driver, mode], input=code, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


ENVIRON_SNOOP = """import os
found = []
for pid in (p for p in os.listdir('/proc') if p.isdigit()):
    try:
        if b'NANOCHAT_TEST_SECRET=' in open(f'/proc/{pid}/environ', 'rb').read():
            found.append(pid)
    except OSError:
        pass
for target in (os.getppid(), EVALUATOR):
    try:
        print('read', target, b'NANOCHAT_TEST_SECRET=' in open(f'/proc/{target}/environ', 'rb').read())
    except OSError as e:
        print('refused', target, type(e).__name__)
print('own env has it:', 'NANOCHAT_TEST_SECRET' in os.environ)
print('found', found)
"""


def test_the_evaluators_environ_is_out_of_reach(mode):
    if mode == "plain":
        pytest.skip("plain mode (no namespaces, same uid) cannot hide the evaluator's environ; it says so")
    out = _evaluator_with_secret(ENVIRON_SNOOP, mode)
    assert "found []" in out and "own env has it: False" in out, out
    assert "read" not in out.replace("refused", ""), out


def test_the_evaluator_cannot_be_signalled(mode):
    if mode == "plain":
        pytest.skip("plain mode (no namespaces, same uid) can signal the evaluator; it says so")
    got = []
    old = signal.signal(signal.SIGTERM, lambda *a: got.append(a[0]))
    try:
        code = (f"import os, signal\nfor pid in (os.getppid(), {os.getpid()}):\n    try:\n"
                "        os.kill(pid, signal.SIGTERM)\n        print('sent', pid)\n"
                "    except OSError as e:\n        print('refused', pid, type(e).__name__)\n")
        r = run_python(code, 10, mode=mode)
        time.sleep(0.1)  # a delivered signal runs its handler at the next bytecode; give it a moment
    finally:
        signal.signal(signal.SIGTERM, old)
    assert got == [], r.output
    assert f"refused {os.getpid()}" in r.output


def test_the_users_files_are_not_writable(mode, tmp_path):
    if mode == "plain":
        pytest.skip("plain mode (no namespaces, same uid) can write the user's files; it says so")
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    target = mine / "written.txt"
    r = run_python(f"open({str(target)!r}, 'w').write('x')\n", 10, mode=mode)
    assert not r.ok and not target.exists() and "Error" in r.output


# -- namespaces only -------------------------------------------------------------------------------------

def test_only_the_private_tmp_is_writable(ns, tmp_path):
    open_dir = tmp_path / "world-writable"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # permissions allow it: only the read-only mounts stand in the way
    code = ("import os\nfor p in ({!r}, '/dev/shm/x', '/var/tmp/x', '/tmp/x'):\n    try:\n"
            "        open(p, 'w').write('x')\n        print('wrote', p)\n    except OSError as e:\n"
            "        print('refused', p, e.errno)\n").format(str(open_dir / "x"))
    r = run_python(code, 10, mode=ns)
    assert r.ok and not (open_dir / "x").exists(), r.output
    assert "wrote /tmp/x" in r.output and r.output.count("refused") == 3, r.output


def test_no_network_and_no_capabilities(ns):
    code = ("import socket\ns = socket.socket(); s.settimeout(2)\ntry:\n    s.connect(('1.1.1.1', 80))\n"
            "    print('connected')\nexcept OSError as e:\n    print('no network', e.errno)\n"
            "status = open('/proc/self/status').read()\n"
            "print([l.split()[1] for l in status.splitlines() if l.startswith(('CapEff', 'CapBnd'))])\n")
    r = run_python(code, 10, mode=ns)
    assert r.ok and "no network" in r.output and "['0000000000000000', '0000000000000000']" in r.output, r.output


def test_a_daemon_dies_with_the_call(ns):
    tag = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"  # a unique argv to find it by
    daemon = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
              "        os.execv('/bin/sh', ['sh', '-c', 'exec >/dev/null 2>&1; while :; do date >> /tmp/beat; "
              f"sleep 0.05; done', '{tag}'])\n    os._exit(0)\ntime.sleep(0.3)\nprint('left a daemon')\n")
    r = run_python(daemon, 10, mode=ns)
    assert r.ok and "left a daemon" in r.output
    assert _processes_with(tag) == []  # it wrote to its file until the call ended; now it is gone


def test_isolation_is_probed_and_reported():
    iso = sandbox.isolation()
    assert iso.name in sandbox.MODES
    assert iso.name == "namespaces" or iso.why  # a weaker mode always says why
    assert HumanEval(problems=load_problems()[:1]).sandbox_mode().startswith(iso.name)  # recorded with results
