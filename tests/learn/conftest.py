"""Fixtures for learn mode: a fresh skeleton, and the skeleton completed from the reference."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def reference_text() -> str:
    from nanochat_cli.learn import skeleton

    return skeleton.reference_source()


@pytest.fixture(scope="session")
def skeleton_text(reference_text) -> str:
    from nanochat_cli.learn import skeleton
    from nanochat_cli.learn.components import COMPONENTS

    return skeleton.make_skeleton(reference_text, COMPONENTS)


@pytest.fixture(scope="session")
def complete_text(skeleton_text, reference_text) -> str:
    from nanochat_cli.learn import skeleton
    from nanochat_cli.learn.components import COMPONENTS

    text = skeleton_text
    for comp in COMPONENTS:
        text = skeleton.splice_reference(text, reference_text, comp)
    return text


@pytest.fixture
def ws_file(tmp_path) -> Path:
    """Where a test writes its workspace gpt.py."""
    d = tmp_path / "ws"
    d.mkdir()
    return d / "gpt.py"
