"""`nanochat chat`: talk to a checkpoint."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, DepthOpt, ProfileOpt, build_config
from nanochat_cli.errors import NotBuiltYet


def chat(ctx: typer.Context,
         source: Annotated[Optional[str], typer.Option("-i", "--source", help="base, mid or sft (chat.source).")] = None,
         prompt: Annotated[Optional[str], typer.Option("-p", "--prompt", help="One-shot prompt; omit for a session.")] = None,
         step: Annotated[Optional[int], typer.Option("--step", help="Checkpoint step (default latest).")] = None,
         temperature: Annotated[Optional[float], typer.Option("--temperature", "-t", help="0 = greedy.")] = None,
         top_k: Annotated[Optional[int], typer.Option("--top-k", "-k", help="Sample from the k most likely.")] = None,
         depth: DepthOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None) -> None:
    """Chat with a trained model (interactive, or one-shot with -p)."""
    build_config(ctx, profile, config, {"chat.source": source, "chat.step": step, "chat.temperature": temperature,
                                        "chat.top_k": top_k, "model.depth": depth})
    raise NotBuiltYet("chat", 7)
