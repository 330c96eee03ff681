"""`nanochat eval core|bpb|chat`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config
from nanochat_cli.errors import NotBuiltYet

app = typer.Typer(help="Evaluate a checkpoint: CORE, bits per byte, chat tasks.", no_args_is_help=True)


@app.command("core")
def core(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """The DCLM CORE metric of the base model."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("eval core", 7)


@app.command("bpb")
def bpb(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Bits per byte on the validation shard."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("eval bpb", 7)


@app.command("chat")
def chat(ctx: typer.Context,
         source: Annotated[Optional[str], typer.Option("-i", "--source", help="mid or sft")] = None,
         task: Annotated[Optional[str], typer.Option("-a", "--task", help="One task (default: all).")] = None,
         profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Chat evals (ARC, MMLU, GSM8K, HumanEval, SpellingBee) and ChatCORE."""
    build_config(ctx, profile, config, {"chat.source": source})
    raise NotBuiltYet("eval chat", 7)
