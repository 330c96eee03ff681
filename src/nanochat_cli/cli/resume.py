"""`nanochat resume`: continue the latest unfinished phase, or rerun from a given phase."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, DryRunOpt, ProfileOpt, build_config
from nanochat_cli.errors import NotBuiltYet


def resume(ctx: typer.Context,
           from_: Annotated[Optional[str], typer.Option("--from", help="base, mid or sft: rerun from that phase.")] = None,
           profile: ProfileOpt = None, config: ConfigOpt = None, dry_run: DryRunOpt = False) -> None:
    """Continue the latest unfinished phase exactly where it stopped (or rerun --from a phase)."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("resume", 5)
