"""The committed example scripts under slurm/ must be exactly what the renderer produces today."""

from __future__ import annotations

import subprocess

import pytest

from nanochat_cli.slurm.examples import render_examples
from tests.conftest import ROOT

EXAMPLES = render_examples()


def test_the_examples_are_the_a100x8_speedrun_and_resume_from_mid():
    assert set(EXAMPLES) == {"nanochat-speedrun.sbatch", "nanochat-from-mid.sbatch"}
    assert sorted(p.name for p in (ROOT / "slurm").glob("*.sbatch")) == sorted(EXAMPLES)
    assert "launch nanochat train base" in EXAMPLES["nanochat-speedrun.sbatch"]
    mid = EXAMPLES["nanochat-from-mid.sbatch"]
    assert "nanochat doctor --phase mid,sft" in mid and "train base" not in mid


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_matches_the_renderer(name):
    committed = (ROOT / "slurm" / name).read_text(encoding="utf-8")
    assert committed == EXAMPLES[name], (
        f"slurm/{name} drifted from the renderer: run `python -m nanochat_cli.slurm.examples` and commit")
    subprocess.run(["bash", "-n", str(ROOT / "slurm" / name)], check=True)
