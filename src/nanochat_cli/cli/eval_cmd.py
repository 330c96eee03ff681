"""`nanochat eval core|bpb|chat`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, DepthOpt, JsonOpt, ProfileOpt, build_config

app = typer.Typer(help="Evaluate a checkpoint: CORE, bits per byte, chat tasks.", no_args_is_help=True)

StepOpt = Annotated[Optional[int], typer.Option("--step", help="Checkpoint step (default latest).")]


def _show(res: dict, json: bool, title: str, average_keys: tuple[str, ...]) -> None:
    """Print on rank 0 only (under torchrun every rank computes, one prints), then leave the group."""
    from nanochat_cli.cli import output
    from nanochat_cli.train import dist

    try:
        if not dist.is_rank0():
            return
        if json:
            output.emit_json(res)
        elif "tasks" in res:
            _table(title, res, average_keys)
        else:
            output.result(f"{res['source']} step {res['step']}: {res['bpb']:.4f} bits per byte ({res['tokens']:,} tokens)")
    finally:
        dist.cleanup()


def _table(title: str, res: dict, average_keys: tuple[str, ...]) -> None:
    from nanochat_cli.cli import output

    rows = [(name, f"{t['accuracy']:.4f}", f"{t['centered']:.4f}") for name, t in res["tasks"].items()]
    for k in average_keys:
        if res.get(k) is not None:
            rows.append((k.upper() if k in ("core", "chatcore") else k, "", f"{res[k]:.4f}"))
    output.table(title, ["task", "accuracy", "centered"], rows)


@app.command("core", epilog="Examples: `nanochat eval core`; `nanochat eval core --suite mini --json`; "
                            "`torchrun --nproc_per_node 8 -m nanochat_cli eval core --profile a100x8`.")
def core(ctx: typer.Context,
         source: Annotated[str, typer.Option("-i", "--source", help="Checkpoint phase: base, mid or sft.")] = "base",
         step: StepOpt = None, depth: DepthOpt = None,
         suite: Annotated[str, typer.Option("--suite", help="auto, core (DCLM bundle) or mini (packaged mini-suite).")] = "auto",
         max_per_task: Annotated[Optional[int], typer.Option("--max-per-task", help="Rows per task, -1 = all (eval.core_max_per_task).")] = None,
         profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """The DCLM CORE metric of a base model (or the packaged mini-suite offline)."""
    from nanochat_cli.cli import output
    from nanochat_cli.errors import UsageError
    from nanochat_cli.eval.run import run_core

    if suite not in ("auto", "core", "mini"):
        raise UsageError(f"--suite must be auto, core or mini, not {suite!r}")
    cfg = build_config(ctx, profile, config, {"model.depth": depth, "eval.core_max_per_task": max_per_task}).config
    res = run_core(cfg, source, step, suite, progress=output.info)
    _show(res, json, f"{res['suite']} ({source} step {res['step']})", ("core", "mini_suite"))


@app.command("bpb", epilog="Example: `nanochat eval bpb -i base --json`.")
def bpb(ctx: typer.Context,
        source: Annotated[str, typer.Option("-i", "--source", help="Checkpoint phase: base, mid or sft.")] = "base",
        step: StepOpt = None, depth: DepthOpt = None,
        profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Bits per byte on the validation shard."""
    from nanochat_cli.cli import output
    from nanochat_cli.eval.run import run_bpb

    cfg = build_config(ctx, profile, config, {"model.depth": depth}).config
    res = run_bpb(cfg, source, step, progress=output.info)
    _show(res, json, "bpb", ())


@app.command("chat", epilog="Examples: `nanochat eval chat -i sft`; `nanochat eval chat -i mid -a GSM8K --json`.")
def chat(ctx: typer.Context,
         source: Annotated[Optional[str], typer.Option("-i", "--source", help="mid or sft")] = None,
         task: Annotated[Optional[str], typer.Option("-a", "--task", help="One task (default: all).")] = None,
         step: StepOpt = None, depth: DepthOpt = None,
         max_problems: Annotated[Optional[int], typer.Option("--max-problems", help="Per task, -1 = all (eval.chat_max_problems).")] = None,
         profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Chat evals (ARC, MMLU, GSM8K, HumanEval, SpellingBee) and ChatCORE; packaged tasks offline."""
    from nanochat_cli.cli import output
    from nanochat_cli.eval.run import run_chat_eval

    cfg = build_config(ctx, profile, config, {"chat.source": source, "model.depth": depth,
                                              "eval.chat_max_problems": max_problems}).config
    src = source or ("sft" if cfg.chat.source == "base" else cfg.chat.source)
    res = run_chat_eval(cfg, src, step, task, progress=output.info)
    _show(res, json, f"{res['suite']} ({src} step {res['step']})", ("chatcore", "chat_mini_suite", "partial_average"))
