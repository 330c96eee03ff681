"""`nanochat chat`: talk to a checkpoint."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, ModelDepthOpt, ModelRunOpt, ProfileOpt, StepOpt, build_config

EPILOG = ("Examples: `nanochat chat` (interactive, the SFT model) · `nanochat chat -p \"Why is the sky blue?\"` · "
          "`nanochat chat -i base -p \"The capital of France is\"` (plain completion) · `nanochat chat -i rl` (after "
          "`nanochat train rl`).")


def chat(ctx: typer.Context,
         source: Annotated[Optional[str], typer.Option("-i", "--source", help="base, mid, sft or rl (chat.source).")] = None,
         prompt: Annotated[Optional[str], typer.Option("-p", "--prompt", help="One-shot prompt; omit for a session.")] = None,
         run: ModelRunOpt = None, step: StepOpt = None,
         temperature: Annotated[Optional[float], typer.Option("--temperature", "-t", help="0 = greedy.")] = None,
         top_k: Annotated[Optional[int], typer.Option("--top-k", "-k", help="Sample from the k most likely.")] = None,
         max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", help="Most tokens per reply.")] = None,
         depth: ModelDepthOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None) -> None:
    """Chat with a trained model (interactive, or one-shot with -p)."""
    cfg = build_config(ctx, profile, config, {"chat.source": source, "chat.step": step,
                                              "chat.temperature": temperature, "chat.top_k": top_k,
                                              "chat.max_tokens": max_tokens}).config
    import sys

    import torch

    from nanochat_cli.chat_session import ChatSession, interactive
    from nanochat_cli.model.engine import GenerationConfig
    from nanochat_cli.model.inference import load_for_inference

    from nanochat_cli.hardware import usable_cpus

    torch.set_num_threads(usable_cpus())
    loaded = load_for_inference(cfg, cfg.chat.source, cfg.chat.step, run=run, depth=depth)
    gen = GenerationConfig(max_tokens=cfg.chat.max_tokens, temperature=cfg.chat.temperature, top_k=cfg.chat.top_k,
                           seed=cfg.train.seed)
    session = ChatSession(loaded, gen)
    # A prompt longer than the context is refused (UsageError, exit 2) before anything else is printed, so
    # the refusal is the command's one line.
    turn = session.prepare(prompt) if prompt is not None else None
    output.info(loaded.description)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    if turn is not None:
        session.respond(turn, on_text=write)
        write("\n")
        for line in session.notices():
            output.info(line)
        return
    interactive(session, read=input, write=write, notify=output.info)
