"""Can we write there? Asked before work whose result ends in a write, so a read-only or mistyped target is
one line in milliseconds, not a raw OSError after the work (eval bpb computed for ~30 s, then failed to record).

The check creates nothing: it finds the nearest directory that exists on the way to the target, refuses a
file in the way, and writes and deletes one empty probe file there. A probe, not `os.access`: the answer must
hold for root too (root passes every permission bit, but not a read-only mount) and on network file systems.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nanochat_cli.errors import UsageError


def check_writable_dir(path: Path, what: str, fix: str) -> None:
    """UsageError (exit 2) unless `path` is a directory we can write in, or could be created as one.
    `what` names the target in the message (e.g. "--out"), `fix` says what to do instead."""
    path = Path(path)
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        problem = "is a file, not a directory" if existing == path else f"cannot be created: {existing} is a file"
        raise UsageError(f"{what} {path} {problem}", fix)
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        where = "" if existing == path else f" (in {existing})"
        raise UsageError(f"cannot write to {what} {path}: {e.strerror or e}{where}", fix) from None
