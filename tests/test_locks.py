"""locks.hold between real processes: exclusion, waiting, holder info, kill -9 releases, re-entrancy within
a thread, and a filesystem that cannot lock."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from nanochat_cli import locks
from nanochat_cli.locks import LockHeld, hold, read_holder
from tests.conftest import cli_env

HOLDER = """
import sys
from nanochat_cli.locks import hold
with hold(sys.argv[1], wait=True, what="test store"):
    print("held", flush=True)
    sys.stdin.readline()  # hold until the test writes a line (or closes stdin)
"""


def _start_holder(lock) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=cli_env())
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_process_is_refused_with_holder_info_and_kill_9_releases(tmp_path):
    lock = tmp_path / "sub" / ".lock"  # the directory does not exist yet: hold creates it
    p = _start_holder(lock)
    try:
        assert read_holder(lock) == (p.pid, socket.gethostname())
        with pytest.raises(LockHeld) as e:
            with hold(lock, wait=False, what="test store"):
                pass
        assert (e.value.pid, e.value.host) == (p.pid, socket.gethostname())
        assert f"test store is in use by pid {p.pid} on {socket.gethostname()}" in e.value.one_line()
        assert e.value.exit_code == 3
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    with hold(lock, wait=False, what="test store"):  # the kernel dropped the dead holder's lock
        assert read_holder(lock) == (os.getpid(), socket.gethostname())
    assert read_holder(lock) == (None, None) and lock.exists()  # released: emptied, never deleted


def test_waiter_says_who_it_waits_for_then_proceeds(tmp_path):
    lock = tmp_path / ".lock"
    p = _start_holder(lock)
    waited, acquired = [], []

    def waiter():
        with hold(lock, wait=True, what="test store", on_wait=waited.append):
            acquired.append(time.monotonic())

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    assert not acquired and len(waited) == 1 and waited[0].pid == p.pid
    released = time.monotonic()
    p.stdin.write("go\n")
    p.stdin.flush()
    p.wait(timeout=30)
    t.join(timeout=30)
    assert acquired and acquired[0] >= released


def test_reentrant_in_one_thread_exclusive_across_threads(tmp_path):
    lock = tmp_path / ".lock"
    other = []

    def try_other():
        try:
            with hold(lock, wait=False, what="test store"):
                other.append("got it")
        except LockHeld as e:
            other.append(e.pid)

    with hold(lock, wait=False, what="test store"):
        with hold(lock, wait=False, what="test store"):  # nested: same thread, no deadlock
            pass
        assert read_holder(lock)[0] == os.getpid()  # the inner exit did not release the outer hold
        t = threading.Thread(target=try_other)
        t.start()
        t.join()
    assert other == [os.getpid()]
    try_other()
    assert other[-1] == "got it"


def test_filesystem_without_flock_warns_once_and_continues(tmp_path, monkeypatch, capsys):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_flock)
    monkeypatch.setattr(locks, "_warned", set())
    ran = []
    for _ in range(2):
        with hold(tmp_path / ".lock", wait=True, what="test store"):
            ran.append(1)
    assert ran == [1, 1]
    assert capsys.readouterr().err.count("cannot lock files") == 1


def test_other_errors_propagate(tmp_path, monkeypatch):
    def broken(fd, op):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(locks.fcntl, "flock", broken)
    with pytest.raises(OSError, match="I/O error"):
        with hold(tmp_path / ".lock", wait=True, what="test store"):
            pass
    monkeypatch.undo()
    with hold(tmp_path / ".lock", wait=False, what="test store"):  # the failed attempt left nothing held
        pass
