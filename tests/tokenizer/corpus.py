"""The embedded corpus built once per test process (~5 s) and copied into each test's home (~20 ms)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace


@functools.lru_cache(maxsize=1)
def built_corpus() -> Path:
    from nanochat_cli.data.embedded import ensure_embedded_corpus

    root = Path(tempfile.mkdtemp(prefix="nanochat-embedded-"))
    atexit.register(shutil.rmtree, root, True)
    ensure_embedded_corpus(SimpleNamespace(home=root))
    return root / "base_data"


def install_corpus(home: Path) -> Path:
    """Copy the built corpus into `home`/base_data; returns that directory."""
    dest = home / "base_data"
    shutil.copytree(built_corpus(), dest)
    return dest
