"""`nanochat speedrun`: the whole pipeline as one resumable run."""

from __future__ import annotations

import typer

from nanochat_cli.cli.options import ConfigOpt, DryRunOpt, ProfileOpt, build_config
from nanochat_cli.errors import NotBuiltYet


def speedrun(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, dry_run: DryRunOpt = False) -> None:
    """Data → tokenizer → base → mid → SFT → eval → report, resumable; ends with the chat command."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("speedrun", 10)
