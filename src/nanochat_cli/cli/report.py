"""`nanochat report`: the markdown report card of a run."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config


def report(ctx: typer.Context,
           run: Annotated[Optional[str], typer.Option("--run", help="Run id (default: the latest run).")] = None,
           profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Write the report card (markdown + loss/bpb plots) of a run; --json prints its data instead."""
    cfg = build_config(ctx, profile, config).config
    from nanochat_cli import report as rep

    if json:
        data = rep.build_report(cfg, run)
        data.pop("curves", None)
        return output.emit_json(data)
    path = rep.write_report(cfg, run)
    output.result(str(path))
