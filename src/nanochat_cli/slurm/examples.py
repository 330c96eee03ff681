"""The example sbatch files committed under `slurm/` at the repository root, rendered from fixed
settings (no environment, no .env.local) so they are byte-stable; a test fails when they drift from
the renderer. Regenerate: `python -m nanochat_cli.slurm.examples` from the repository root."""

from __future__ import annotations

import sys
from pathlib import Path

# A typical university cluster: shared scratch for data and checkpoints, a project venv, CUDA module.
COMMON = {"home": "/scratch/nanochat", "slurm.venv": "/scratch/nanochat/venv", "slurm.modules": ["cuda/12.4"],
          "track.run": "d20-speedrun"}
EXAMPLES = {
    # name: (flags, --phases, --from)
    "nanochat-speedrun": ({"slurm.job_name": "nanochat-speedrun"}, None, None),
    "nanochat-from-mid": ({"slurm.job_name": "nanochat-from-mid"}, None, "mid"),
}


def render_examples() -> dict[str, str]:
    """File name → text of every example."""
    from nanochat_cli.config_sources import load_config
    from nanochat_cli.slurm.render import parse_phases, render_jobs

    out = {}
    for name, (flags, phases, from_phase) in EXAMPLES.items():
        resolved = load_config(profile="a100x8", flags={**COMMON, **flags}, environ={})
        rendered = render_jobs(resolved, parse_phases(phases, from_phase), COMMON["track.run"])
        for js in rendered.scripts:
            out[js.filename] = js.text
    return out


def main(argv: list[str]) -> None:
    target = Path(argv[0]) if argv else Path("slurm")
    target.mkdir(parents=True, exist_ok=True)
    for filename, text in render_examples().items():
        (target / filename).write_text(text, encoding="utf-8")
        print(f"wrote {target / filename}")


if __name__ == "__main__":
    main(sys.argv[1:])
