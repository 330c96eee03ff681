"""What the prose docs say about a profile's size agrees with the profile (the numbers themselves live in the
generated docs/reference/profiles.md): the cpu-tiny depth was once wrong in three pages."""

from __future__ import annotations

import re
from pathlib import Path

from nanochat_cli.config_sources import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_docs_give_cpu_tiny_its_real_depth():
    depth = load_config(profile="cpu-tiny", environ={}).config.model.depth
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    claims = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        # "cpu-tiny … depth N" / "cpu-tiny … dN" within one clause, and "dN cpu-tiny" (not bench's d4 reference);
        # a list of shapes ("cpu-tiny or d4", "cpu-tiny, d20", a table's "cpu-tiny | d4") names another model
        for m in re.finditer(r"cpu-tiny[^.;,|\n]{0,50}?\b(?:depth[- ]|d)(\d+)\b(?!-ref)|\bd(\d+) cpu-tiny", text):
            if " or " in m.group(0):
                continue
            claims.append((page.relative_to(ROOT), int(m.group(1) or m.group(2))))
    assert claims, "no page states the cpu-tiny depth any more: drop this test"
    assert [c for c in claims if c[1] != depth] == []
