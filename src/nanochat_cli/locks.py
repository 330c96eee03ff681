"""Exclusive locks between processes: `with hold(path, wait=..., what=...):` on a lock file under <home>.

The lock is `fcntl.flock` on an open file, so the kernel drops it when the holder exits for any reason
(kill -9, OOM, a node reboot of a local disk): there is no stale lock to clean up and no lock file is ever
deleted (deleting one while another process waits on it would let two holders in). The holder writes
"pid host" into the file so a waiter can say who it waits for; that costs one small write per acquire, and
in the microseconds between acquiring and writing a waiter may read the previous holder's line or nothing.
Filesystems without flock (Lustre mounted without `-o flock` answers ENOSYS, some NFS setups ENOLCK) get
one warning per directory and no lock, rather than a command that cannot run at all.
Within one process the lock is re-entrant for the thread that holds it; other threads are excluded like
other processes. The file descriptor is close-on-exec (PEP 446), so subprocesses never inherit the lock;
a bare `os.fork()` child does (flock locks belong to the open file, which a fork shares). It does not
time out: `wait=True` waits until the holder finishes or dies.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nanochat_cli.errors import EXIT_PREFLIGHT, NanochatError

# errnos meaning "this filesystem cannot lock", not "someone holds it".
UNSUPPORTED = {errno.ENOLCK, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


class LockHeld(NanochatError):
    """Another process (or thread) holds the lock: `pid` and `host` say who, when the lock file says it."""

    exit_code = EXIT_PREFLIGHT

    def __init__(self, path: Path, what: str, pid: int | None, host: str | None):
        self.path, self.what, self.pid, self.host = Path(path), what, pid, host
        super().__init__(f"{what} is in use by {describe_holder(pid, host)} (lock {path})",
                         "wait for it to finish, or stop that process")


def describe_holder(pid: int | None, host: str | None) -> str:
    if pid is None:
        return "another process"
    return f"pid {pid} on {host or 'an unknown host'}"


def read_holder(path: Path) -> tuple[int | None, str | None]:
    """(pid, host) written by the current holder, or (None, None) when the file is empty or unreadable."""
    try:
        fields = Path(path).read_text(encoding="utf-8", errors="replace").split()
        return int(fields[0]), (fields[1] if len(fields) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None, None


@dataclass
class _Held:
    """This process's hold on one lock file: the open descriptor, the owning thread's RLock, a depth count."""

    guard: threading.RLock
    fd: int = -1
    depth: int = 0


_registry: dict[str, _Held] = {}
_registry_guard = threading.Lock()
_warned: set[str] = set()


def _warn_unsupported(path: Path, err: OSError) -> None:
    key = str(path.parent)
    if key in _warned:
        return
    _warned.add(key)
    sys.stderr.write(f"warning: the filesystem of {path.parent} cannot lock files ({err.strerror or err}); "
                     "continuing without a lock — do not run two such commands at once on this home\n")
    sys.stderr.flush()


@contextmanager
def hold(path: Path, *, wait: bool, what: str, on_wait: Callable[[LockHeld], None] | None = None) -> Iterator[None]:
    """Hold the exclusive lock `path` for the block (creating the file and its directory if needed).

    wait=False: raise LockHeld at once when another process or thread holds it.
    wait=True: call `on_wait(LockHeld(...))` once (to print who holds it), then block until it is free.
    `what` names the thing locked in messages ("the tokenizer store", "run d20-v1")."""
    path = Path(path)
    key = os.path.realpath(path)
    with _registry_guard:
        held = _registry.setdefault(key, _Held(threading.RLock()))
    if not held.guard.acquire(blocking=False):  # another thread of this process holds it
        if not wait:
            raise LockHeld(path, what, os.getpid(), socket.gethostname())
        if on_wait is not None:
            on_wait(LockHeld(path, what, os.getpid(), socket.gethostname()))
        held.guard.acquire()
    try:
        if held.depth == 0:
            held.fd = _acquire(path, wait, what, on_wait)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0:
                _release(held.fd)
                held.fd = -1
    finally:
        held.guard.release()


def _acquire(path: Path, wait: bool, what: str, on_wait) -> int:
    """Lock `path` and write "pid host" into it; -1 when the filesystem cannot lock (warned once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, host = read_holder(path)
            if not wait:
                raise LockHeld(path, what, pid, host) from None
            if on_wait is not None:
                on_wait(LockHeld(path, what, pid, host))
            fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as e:
        os.close(fd)
        if e.errno in UNSUPPORTED:
            _warn_unsupported(path, e)
            return -1
        raise
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    return fd


def _release(fd: int) -> None:
    if fd < 0:
        return
    try:
        os.ftruncate(fd, 0)  # still holding it: an empty file means "nobody says they hold it"
    finally:
        os.close(fd)  # closing the last descriptor of the open file releases the flock


def data_lock(paths):
    """The home's data-download lock: `with data_lock(paths):` waits for another fetch (or embedded-corpus build)
    on the same home, saying whose it is, so two never write the same shards."""

    def say(held: LockHeld) -> None:
        sys.stderr.write(f"waiting for another data download on this home ({describe_holder(held.pid, held.host)})…\n")
        sys.stderr.flush()

    return hold(paths.data_lock, wait=True, what="data downloads", on_wait=say)
