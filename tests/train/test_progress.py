"""Progress: a rich bar on a TTY (run in a real pseudo-terminal), plain lines otherwise; MFU peaks."""

from __future__ import annotations

import os
import pty
import sys

import pytest

from nanochat_cli.train.progress import Progress


def test_plain_lines_without_a_tty(capsys):
    p = Progress("base", 10, 0, enabled=True, every_s=3600)
    for s in range(1, 11):
        p.update(s, 2.0, 1000.0, None)
    p.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2  # the first and the last step (the rest fall inside every_s)
    assert lines[0].startswith("base step 1/10") and "1,000 tok/s" in lines[0] and "eta" in lines[0]
    assert lines[1].startswith("base step 10/10 (100.0%)") and "MFU" not in lines[1]


def test_disabled_on_other_ranks_prints_nothing(capsys):
    p = Progress("base", 3, 0, enabled=False)
    p.update(1, 2.0, 1.0, 50.0)
    p.message("x")
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_rich_bar_on_a_tty_shows_loss_and_mfu():
    pid, fd = pty.fork()
    if pid == 0:  # child: fd 2 is the pseudo-terminal (sys.stderr is pytest's capture until replaced)
        code = 1
        try:
            sys.stderr = open(2, "w", closefd=False)
            p = Progress("base", 5, 0, enabled=True)
            assert p._bar is not None
            for s in range(1, 6):
                p.update(s, 3.0 - s * 0.1, 1234.0, 41.5)
            p.message("saved here")
            p.close()
            sys.stderr.flush()
            code = 0
        finally:
            os._exit(code)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert b"loss 2.5000" in out and b"MFU 41.5%" in out and b"saved here" in out
