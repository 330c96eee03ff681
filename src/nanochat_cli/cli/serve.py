"""`nanochat serve`: an OpenAI-compatible API and a web chat page for a trained model."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, ModelDepthOpt, ModelRunOpt, ProfileOpt, StepOpt, build_config
from nanochat_cli.errors import UsageError

EPILOG = ("Examples: `nanochat serve` (the newest SFT model on http://127.0.0.1:8000/) · `nanochat serve --open` · "
          "`nanochat serve -i base --port 9000` · `NANOCHAT_API_KEY=secret nanochat serve --host 0.0.0.0`. "
          "Then: `curl http://127.0.0.1:8000/v1/chat/completions -d '{\"messages\": [{\"role\": \"user\", "
          "\"content\": \"Hi\"}]}'`.")

INSTALL_HINT = "pip install 'nanochat-cli[serve]'"


def require_server_stack() -> None:
    """The serve extra (Starlette + uvicorn) is optional: without it, one line naming the install command."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise UsageError(f"`nanochat serve` needs the serve extra ({e.name or 'starlette/uvicorn'} is not installed)",
                         INSTALL_HINT) from None


def serve(ctx: typer.Context,
          source: Annotated[Optional[str], typer.Option("-i", "--source", help="base, mid or sft (chat.source).")] = None,
          run: ModelRunOpt = None, step: StepOpt = None, depth: ModelDepthOpt = None,
          host: Annotated[Optional[str], typer.Option("--host", help="Address to listen on (serve.host; default "
                                                                      "127.0.0.1, this machine only).")] = None,
          port: Annotated[Optional[int], typer.Option("--port", help="TCP port (serve.port; default 8000, 0 = any "
                                                                      "free one).")] = None,
          api_key: Annotated[Optional[str], typer.Option(
              "--api-key", envvar="NANOCHAT_API_KEY", show_envvar=True,
              help="Require `Authorization: Bearer KEY` on /v1/* (the env var keeps it out of `ps`).")] = None,
          max_batch: Annotated[Optional[int], typer.Option(
              "--max-batch", help="Sequences decoded together per step (serve.max_batch; default 8).")] = None,
          max_queue: Annotated[Optional[int], typer.Option(
              "--max-queue", help="Requests that may wait for a slot before 429 (serve.max_queue).")] = None,
          timeout: Annotated[Optional[float], typer.Option(
              "--timeout", help="Seconds per request before it is cancelled (serve.request_timeout).")] = None,
          threads: Annotated[Optional[int], typer.Option(
              "--threads", help="torch threads for decoding (serve.threads; default: cores less one on <= 4).")] = None,
          log_prompts: Annotated[Optional[bool], typer.Option(
              "--log-prompts/--no-log-prompts", help="Put each request's messages in its log line (serve.log_prompts).")] = None,
          open_browser: Annotated[bool, typer.Option("--open", help="Open the web chat in a browser.")] = False,
          profile: ProfileOpt = None, config: ConfigOpt = None) -> None:
    """Serve a model: OpenAI-compatible API (/v1) and a web chat page (/), batched decoding."""
    require_server_stack()
    if api_key is not None and not api_key.strip():
        raise UsageError("--api-key is empty", "give a key, or leave --api-key (and NANOCHAT_API_KEY) unset")
    cfg = build_config(ctx, profile, config, {"chat.source": source, "serve.host": host, "serve.port": port,
                                              "serve.max_batch": max_batch, "serve.max_queue": max_queue,
                                              "serve.request_timeout": timeout, "serve.threads": threads,
                                              "serve.log_prompts": log_prompts}).config
    from nanochat_cli.cli import output
    from nanochat_cli.serve.server import ServeOptions
    from nanochat_cli.serve.server import serve as run_server

    run_server(cfg, ServeOptions(phase=cfg.chat.source, run=run, step=step if step is not None else cfg.chat.step,
                                 depth=depth, api_key=api_key, open_browser=open_browser), log=output.info)
