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


@pytest.fixture
def learner(ws_file):
    """`learner(text)` writes a workspace gpt.py, imports it and returns (module, Explainer): what a
    check receives from check.Session."""
    from nanochat_cli.learn import harness, loader
    from nanochat_cli.learn.explain import Explainer

    def load(text: str):
        ws_file.write_text(text)
        return loader.load_module(ws_file), Explainer(ws_file, text, harness.reference())

    return load


@pytest.fixture
def plant():
    """`plant(text, component, body)`: `text` with one component's code replaced by `body`."""
    from nanochat_cli.learn import source
    from nanochat_cli.learn.components import BY_NAME

    def replace(text: str, component: str, body: str) -> str:
        comp = BY_NAME[component]
        return source.replace(text, source.locate(text, comp), body, region=comp.name if comp.is_region else None)

    return replace
