"""Exclusive locks on files under the home: one writer per run, one tokenizer training, one download at a time.

`fcntl.flock` on an open file: the kernel drops the lock when its holder exits, however it exits (kill -9,
OOM, a node that reboots on a local disk), so a lock is never stale and nothing has to be cleaned up. The
holder writes `pid host what` into the file after it has the lock, so a refused or waiting process can name
it. Cost: one open + one flock, microseconds. Where the file system has no flock (some Lustre mounts
without `-o flock` answer ENOSYS/EINVAL/ENOLCK), it warns once and goes on unlocked: refusing to run at all
would be worse. NFSv4 and Lustre with `flock` honour it across nodes. It does not lock readers.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

_UNSUPPORTED = {errno.ENOLCK, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_warned_unsupported = False
# Locks this process holds (path → depth). flock conflicts between two descriptors even in one process, so a
# nested `hold` of the same file (speedrun holds its run, then trains a phase of it) must not lock again.
_HELD: dict[str, int] = {}


class LockHeld(Exception):
    """Another process holds the lock (`pid`/`host`/`what` as it wrote them; None when it has not yet)."""

    def __init__(self, path: Path, pid: int | None, host: str | None, what: str | None):
        self.path, self.pid, self.host, self.what = Path(path), pid, host, what
        super().__init__(f"{path} is held by {self.holder()}")

    def holder(self) -> str:
        if self.pid is None:
            return "another process"
        return f"pid {self.pid} on {self.host or 'an unknown host'}" + (f" ({self.what})" if self.what else "")


def read_holder(path: Path) -> tuple[int | None, str | None, str | None]:
    """(pid, host, what) as the holder wrote them; Nones when the file is empty or unreadable."""
    try:
        parts = Path(path).read_text(encoding="utf-8", errors="replace").split(maxsplit=2)
        return int(parts[0]), parts[1], (parts[2].strip() if len(parts) > 2 else None)
    except (OSError, ValueError, IndexError):
        return None, None, None


def _try_flock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextmanager
def hold(path: Path | str, *, wait: bool, what: str = "",
         on_wait: Callable[[LockHeld], None] | None = None, poll: float = 0.5) -> Iterator[Path]:
    """Hold an exclusive lock on `path` (created if needed) for the `with` block.

    wait=False: raise LockHeld at once when another process holds it. wait=True: call `on_wait(held)` once,
    then wait until it is free. The holder's `pid host what` is written into the file."""
    global _warned_unsupported
    path = Path(path)
    key = os.path.realpath(path)
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            got = _try_flock(fd)
        except OSError as e:
            if e.errno not in _UNSUPPORTED:
                raise
            got = None
        if got is None:  # no locking on this file system: warn once, run unlocked
            if not _warned_unsupported:
                sys.stderr.write(f"warning: the file system of {path.parent} does not support locks; two processes "
                                 "writing the same run or tokenizer will not be detected\n")
                _warned_unsupported = True
            yield path
            return
        if not got:
            held = LockHeld(path, *read_holder(path))
            if not wait:
                raise held
            if on_wait is not None:
                on_wait(held)
            while not _try_flock(fd):
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {what}\n".encode("utf-8", "replace"), 0)
        _HELD[key] = 1
        try:
            yield path
        finally:
            _HELD.pop(key, None)
            try:
                os.ftruncate(fd, 0)  # a reader of a released lock finds no stale holder
            except OSError:
                pass
    finally:
        os.close(fd)  # closing the descriptor releases the flock
