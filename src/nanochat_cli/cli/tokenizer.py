"""`nanochat tokenizer train|eval`."""

from __future__ import annotations

import typer

from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config
from nanochat_cli.errors import NotBuiltYet

app = typer.Typer(help="Train and evaluate the BPE tokenizer.", no_args_is_help=True)


@app.command("train")
def train(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None) -> None:
    """Train a BPE tokenizer on the configured corpus."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("tokenizer train", 4)


@app.command("eval")
def eval_(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Compare compression (bytes/token) with GPT-2 and GPT-4, offline."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("tokenizer eval", 4)
