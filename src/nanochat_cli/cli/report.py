"""`nanochat report`: the markdown report card of a run."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config


def report(ctx: typer.Context,
           run: Annotated[Optional[str], typer.Option("--run", help="Run id (default: the latest run).")] = None,
           stdout: Annotated[bool, typer.Option(
               "--stdout", help="Print the markdown card on stdout and write nothing (no plots), e.g. for a run "
                                "you cannot write to.")] = False,
           profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Write the report card (markdown + loss/bpb plots) of a run; --json prints its data instead."""
    cfg = build_config(ctx, profile, config).config
    from nanochat_cli import report as rep

    if json and stdout:
        from nanochat_cli.errors import UsageError

        raise UsageError("--json and --stdout cannot be combined", "pick one: --json for data, --stdout for markdown")
    if stdout:
        return output.result(rep.report_text(cfg, run))
    if json:
        data = rep.build_report(cfg, run)
        data.pop("curves", None)
        return output.emit_json(data)
    path = rep.write_report(cfg, run)
    output.result(str(path))
