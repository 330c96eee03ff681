"""`nanochat doctor`: preflight checks with the command that fixes each problem."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config
from nanochat_cli.errors import NotBuiltYet


def doctor(ctx: typer.Context,
           phase: Annotated[Optional[str], typer.Option("--phase", help="Check what this phase needs.")] = None,
           profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Check GPUs, data, tokenizer, datasets, checkpoints, disk and home before spending compute."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("doctor", 9)
