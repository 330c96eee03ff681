"""The generated reference pages must match the code (regenerate: python -m nanochat_cli.reference_docs)."""

from pathlib import Path

import pytest

from nanochat_cli.reference_docs import PAGES

REF = Path(__file__).resolve().parents[2] / "docs" / "reference"


@pytest.mark.parametrize("name", sorted(PAGES))
def test_reference_page_is_fresh(name):
    committed = (REF / name).read_text(encoding="utf-8")
    assert committed == PAGES[name](), (
        f"docs/reference/{name} is stale: run `python -m nanochat_cli.reference_docs` and commit the result")
