"""paths.py: atomic writes keep the process umask (not mkstemp's 0600) and stay atomic."""

from __future__ import annotations

import os
import stat

import pytest

from nanochat_cli.paths import atomic_write_text, follow_umask, process_umask


@pytest.fixture
def umask():
    """Set a umask for the test and put the old one back."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(saved)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    assert process_umask() == mask
    target = tmp_path / "sub" / "report.md"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")  # a replace gets the umask too, not the old file's mode
    assert target.read_text() == "second" and _mode(target) == expected
    assert _mode(target.parent) == 0o777 & ~mask  # directories made on the way follow it as well
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]  # no temp file left behind


def test_follow_umask_opens_up_tempfile_directories(tmp_path, umask):
    import tempfile

    umask(0o022)
    d = tempfile.mkdtemp(dir=tmp_path)
    assert _mode(d) == 0o700
    follow_umask(d, directory=True)
    assert _mode(d) == 0o755
