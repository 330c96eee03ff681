"""`nanochat data fetch|status`: get every dataset a run needs before going offline."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config
from nanochat_cli.errors import NotBuiltYet

app = typer.Typer(help="Download and verify datasets (run on a node with internet).", no_args_is_help=True)


@app.command("fetch")
def fetch(ctx: typer.Context,
          what: Annotated[str, typer.Argument(help="base, mid, sft, eval or all")] = "base",
          shards: Annotated[Optional[int], typer.Option("--shards", help="fineweb shards (data.shards).")] = None,
          base_url: Annotated[Optional[str], typer.Option("--base-url", help="Mirror for shards.")] = None,
          profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Download what a phase needs, verify it by loading it, and report a table."""
    build_config(ctx, profile, config, {"data.shards": shards, "data.base_url": base_url})
    raise NotBuiltYet("data fetch", 4)


@app.command("status")
def status(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Show which datasets are present and load, without downloading."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("data status", 4)
