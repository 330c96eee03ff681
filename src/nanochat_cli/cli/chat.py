"""`nanochat chat`: talk to a checkpoint (one-shot with -p, else an interactive session)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, DepthOpt, ProfileOpt, build_config

HELP_LINE = "Commands: /clear (forget the conversation), /exit (or Ctrl-D). Ctrl-C stops a reply."


def chat(ctx: typer.Context,
         source: Annotated[Optional[str], typer.Option("-i", "--source", help="base, mid or sft (chat.source).")] = None,
         prompt: Annotated[Optional[str], typer.Option("-p", "--prompt", help="One-shot prompt; omit for a session.")] = None,
         step: Annotated[Optional[int], typer.Option("--step", help="Checkpoint step (default latest).")] = None,
         temperature: Annotated[Optional[float], typer.Option("--temperature", "-t", help="0 = greedy.")] = None,
         top_k: Annotated[Optional[int], typer.Option("--top-k", "-k", help="Sample from the k most likely.")] = None,
         max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", help="Longest reply (chat.max_tokens).")] = None,
         depth: DepthOpt = None, profile: ProfileOpt = None, config: ConfigOpt = None) -> None:
    """Chat with a trained model (interactive, or one-shot with -p)."""
    from nanochat_cli.chat_session import open_session
    from nanochat_cli.cli import output

    cfg = build_config(ctx, profile, config, {"chat.source": source, "chat.step": step, "chat.temperature": temperature,
                                              "chat.top_k": top_k, "chat.max_tokens": max_tokens,
                                              "model.depth": depth}).config
    session = open_session(cfg, cfg.chat.source, cfg.chat.step)
    if prompt is not None:
        _stream(session, prompt)
        return
    loaded = session.loaded
    output.info(f"nanochat {loaded.phase} step {loaded.step} ({loaded.path}); "
                f"{'plain completion' if loaded.phase == 'base' else 'chat'}. {HELP_LINE}")
    while True:
        try:
            sys.stderr.write("\nyou> ")
            sys.stderr.flush()
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            sys.stderr.write("\n")
            return
        if not line:  # Ctrl-D / end of input
            sys.stderr.write("\n")
            return
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return
        if text == "/clear":
            session.clear()
            output.info("(conversation cleared)")
            continue
        if text.startswith("/"):
            output.info(f"unknown command {text.split()[0]}. {HELP_LINE}")
            continue
        sys.stderr.write("model> ")
        sys.stderr.flush()
        try:
            _stream(session, text)
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            if session.messages and session.messages[-1]["role"] == "user":
                session.messages.pop()  # keep user/assistant alternating
            output.info("(reply stopped)")


def _stream(session, text: str) -> None:
    for piece in session.reply(text):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
