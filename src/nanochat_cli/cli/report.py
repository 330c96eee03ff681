"""`nanochat report`: the markdown report card of a run."""

from __future__ import annotations

import typer

from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config
from nanochat_cli.errors import NotBuiltYet


def report(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Write the report card (markdown + plots) of the latest run."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("report", 7)
