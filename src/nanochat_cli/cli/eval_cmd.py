"""`nanochat eval core|bpb|chat`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import (ConfigOpt, JsonOpt, ModelDepthOpt, ModelRunOpt, NprocOpt, ProfileOpt,
                                      StepOpt, build_config, command_argv)

app = typer.Typer(help="Evaluate a checkpoint: CORE, bits per byte, chat tasks.", no_args_is_help=True)


def _interruptible():
    """SIGTERM/SIGUSR2 (a Slurm time limit) end a minutes-long eval with one line and exit 75, not a silent kill;
    Ctrl-C ends it with exit 130. Nothing partial is recorded."""
    from nanochat_cli.signals import interruptible

    return interruptible()


def _start(ctx, cfg, source: str, needs, run, step, depth) -> None:
    """Check here (device, the evaluation's data, the checkpoint), then with --nproc N start N workers running
    this command and leave with their exit code; return when this process evaluates itself."""
    from nanochat_cli.cli.train import maybe_relaunch
    from nanochat_cli.eval.runner import preflight_eval

    maybe_relaunch(cfg, command_argv(ctx), lambda: preflight_eval(cfg, source, needs, run=run, step=step, depth=depth))
    _threads(cfg)


def _threads(cfg) -> None:
    import torch

    from nanochat_cli.dist import dist_info
    from nanochat_cli.hardware import usable_cpus

    # N workers on one node share its cores (as training does: train/setup.py)
    torch.set_num_threads(cfg.train.threads or max(1, usable_cpus() // dist_info().local_world_size))


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}"


@app.command("core", epilog="Examples: `nanochat eval core` · `nanochat eval core --max-per-task 500 --json`")
def core(ctx: typer.Context,
         source: Annotated[Optional[str], typer.Option("-i", "--source", help="base (default), mid, sft or rl")] = None,
         max_per_task: Annotated[Optional[int], typer.Option(
             "--max-per-task", help="Rows per task, -1 = all (eval.core_max_per_task).")] = None,
         run: ModelRunOpt = None, step: StepOpt = None, depth: ModelDepthOpt = None, nproc: NprocOpt = None,
         profile: ProfileOpt = None, config: ConfigOpt = None,
         json: JsonOpt = False) -> None:
    """The DCLM CORE metric (22 tasks of the eval bundle) of the base model."""
    cfg = build_config(ctx, profile, config, {"eval.core_max_per_task": max_per_task, "dist.nproc": nproc}).config
    from nanochat_cli.eval.core import load_bundle, run_core
    from nanochat_cli.paths import Paths

    _start(ctx, cfg, source or "base", lambda: load_bundle(Paths.of(cfg).eval_bundle), run, step, depth)

    with _interruptible():
        res = run_core(cfg, source or "base", step, progress=None if json else output.info, run=run, depth=depth)
    if res["rank"] != 0:
        return
    if json:
        return output.emit_json(res)
    rows = [(k, r["type"], r["shots"], r["rows"], _fmt(r["accuracy"]), _fmt(r["centered"]))
            for k, r in res["tasks"].items()]
    output.table(f"CORE of {res['source']} step {res['step']}", ["task", "type", "shots", "rows", "accuracy",
                                                                 "centered"], rows)
    output.result(f"CORE {res['core']:.4f}  ({res['seconds']:.1f} s)")


@app.command("bpb", epilog="Example: `nanochat eval bpb -i base`")
def bpb(ctx: typer.Context,
        source: Annotated[Optional[str], typer.Option("-i", "--source", help="base (default), mid, sft or rl")] = None,
        run: ModelRunOpt = None, step: StepOpt = None, depth: ModelDepthOpt = None, nproc: NprocOpt = None,
        profile: ProfileOpt = None, config: ConfigOpt = None,
        json: JsonOpt = False) -> None:
    """Bits per byte on the validation shard."""
    cfg = build_config(ctx, profile, config, {"dist.nproc": nproc}).config
    from nanochat_cli.data.shards import list_shards
    from nanochat_cli.eval.bpb import run_bpb

    _start(ctx, cfg, source or "base", lambda: list_shards(cfg), run, step, depth)

    with _interruptible():
        res = run_bpb(cfg, source or "base", step, run=run, depth=depth, progress=None if json else output.info)
    if res["rank"] != 0:
        return
    if json:
        return output.emit_json(res)
    output.result(f"{res['source']} step {res['step']}: val bpb {res['bpb']:.4f} "
                  f"({res['tokens']:,} tokens, {res['seconds']:.1f} s)")


@app.command("chat", epilog="Examples: `nanochat eval chat -i sft` · `nanochat eval chat -i rl -a arithmetic` · "
                            "`nanochat eval chat -a quiz --max-problems 50` (mini-suite)")
def chat(ctx: typer.Context,
         source: Annotated[Optional[str], typer.Option("-i", "--source", help="mid, sft or rl (chat.source)")] = None,
         task: Annotated[Optional[str], typer.Option(
             "-a", "--task", help="One task (default: the whole suite): ARC-Easy, ARC-Challenge, MMLU, GSM8K, "
                                  "HumanEval, SpellingBee; mini-suite: quiz, arithmetic, spellingbee, humaneval; "
                                  "also arithmetic-big (numbers up to 400).")] = None,
         max_problems: Annotated[Optional[int], typer.Option(
             "--max-problems", help="Problems per task, -1 = all (eval.chat_max_problems).")] = None,
         suite: Annotated[Optional[str], typer.Option(
             "--suite", help="auto, chatcore or mini (eval.chat_suite).")] = None,
         run: ModelRunOpt = None, step: StepOpt = None, depth: ModelDepthOpt = None, nproc: NprocOpt = None,
         profile: ProfileOpt = None, config: ConfigOpt = None,
         json: JsonOpt = False) -> None:
    """Chat evals (ARC, MMLU, GSM8K, HumanEval, SpellingBee) and ChatCORE, or the offline mini-suite."""
    cfg = build_config(ctx, profile, config, {"chat.source": source, "eval.chat_max_problems": max_problems,
                                              "eval.chat_suite": suite, "dist.nproc": nproc}).config
    from nanochat_cli.eval.chat_eval import check_chat_tasks, run_chat_eval

    _start(ctx, cfg, cfg.chat.source, lambda: check_chat_tasks(cfg, task), run, step, depth)

    with _interruptible():
        res = run_chat_eval(cfg, cfg.chat.source, task, step, progress=None if json else output.info, run=run,
                            depth=depth)
    if res["rank"] != 0:
        return
    if json:
        return output.emit_json(res)
    rows = [(k, r["type"], r["problems"], _fmt(r["accuracy"]), _fmt(r["centered"])) for k, r in res["tasks"].items()]
    output.table(f"{res['suite']} of {res['source']} step {res['step']}",
                 ["task", "type", "problems", "accuracy", "centered"], rows)
    if res["score"] is not None:
        output.result(f"{res['score_name']} {res['score']:.4f}  ({res['seconds']:.1f} s)")
