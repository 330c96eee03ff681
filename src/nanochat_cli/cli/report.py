"""`nanochat report`: the markdown report card of a run."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config


def report(ctx: typer.Context,
           run: Annotated[Optional[str], typer.Option("--run", help="Run id (default: the most recent run).")] = None,
           profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Write the report card (markdown + loss/bpb plots) of a run to <home>/runs/<id>/report.md."""
    from nanochat_cli.cli import output
    from nanochat_cli.report import build_report

    cfg = build_config(ctx, profile, config).config
    data = build_report(cfg, run)
    if json:
        output.emit_json(data)
    else:
        output.result(data["report"])
