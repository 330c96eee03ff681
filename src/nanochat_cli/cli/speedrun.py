"""`nanochat speedrun`: the whole pipeline as one resumable run."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import (ConfigOpt, DryRunOpt, JsonOpt, NprocOpt, ProfileOpt, build_config,
                                      command_argv)

EPILOG = ("Examples: `nanochat speedrun` (cpu-tiny: minutes, no network) · `nanochat speedrun --profile cpu-small` "
          "(12–35 minutes: a model that uses its calculator) · `nanochat speedrun --profile h100x8 --dry-run` "
          "(plan, time and cost, and the torchrun "
          "command of each stage) · `nanochat speedrun --profile h100x8` on an 8-GPU node (training and evals on "
          "all 8 GPUs) · `nanochat speedrun --nproc 2` (2 CPU processes, gloo). "
          "Interrupt it and run it again: finished stages are kept, unfinished ones continue.")


def speedrun(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, nproc: NprocOpt = None,
             run: Annotated[Optional[str], typer.Option(
                 "--run", help="The run to start or continue (track.run) [default: the newest unfinished speedrun "
                               "of this profile, else a new one].")] = None,
             stage: Annotated[Optional[str], typer.Option(
                 "--stage", hidden=True, help="Run only this per-rank stage of --run (what `--nproc N` starts "
                                              "under torchrun).")] = None,
             dry_run: DryRunOpt = False, json_: JsonOpt = False) -> int:
    """Data → tokenizer → base → mid → SFT → RL → eval → report, resumable; ends with the chat command."""
    from nanochat_cli import dist
    from nanochat_cli.cli import output
    from nanochat_cli.speedrun import dry_run_lines

    cfg = build_config(ctx, profile, config, {"dist.nproc": nproc, "track.run": run}).config
    argv = command_argv(ctx)
    if dry_run:
        output.result("\n".join(dry_run_lines(cfg, argv)))
        return 0
    if stage is not None:
        return _one_stage(cfg, stage, run)
    from nanochat_cli import speedrun_ranks
    from nanochat_cli.speedrun import run_speedrun

    try:
        if dist.under_torchrun() and dist.dist_info().is_distributed:
            result = speedrun_ranks.speedrun_under_torchrun(cfg, output.info)
        else:
            _preflight(cfg)
            runner = speedrun_ranks.launched_stages(argv, cfg.dist.nproc) if cfg.dist.nproc > 1 else None
            result = run_speedrun(cfg, say=output.info, **({"run_stage": runner} if runner else {}))
    finally:
        if dist.under_torchrun():
            dist.cleanup()
    _print_result(result, json_)
    return result.exit_code


def _preflight(cfg) -> None:
    """The profile's GPUs, before the data stage downloads anything: a GPU profile on a laptop or login node is
    one line, not a 24 GB download followed by a failure."""
    from nanochat_cli.errors import PreflightError
    from nanochat_cli.hardware import gpu_shortfall

    short = gpu_shortfall(cfg)
    if short is not None:
        raise PreflightError(f"gpus: {short[0]}", short[1])
    if cfg.dist.nnodes > 1:
        from nanochat_cli.errors import UsageError

        raise UsageError("speedrun runs on one node; dist.nnodes > 1 needs a launcher per node",
                         "use `nanochat slurm render` (srun torchrun on every node) for multi-node runs")


def _one_stage(cfg, stage: str, run: str | None) -> int:
    from nanochat_cli import dist
    from nanochat_cli.errors import UsageError
    from nanochat_cli.speedrun_ranks import run_one_stage

    if not run:
        raise UsageError("--stage needs the run it belongs to", "add --run NAME (what `speedrun --nproc N` passes)")
    try:
        return run_one_stage(cfg, stage, run)
    finally:
        dist.cleanup()


def _print_result(result, as_json: bool) -> None:
    from dataclasses import asdict

    from nanochat_cli.cli import output

    if as_json:
        output.emit_json(asdict(result))
        return
    output.result(f"run:    {result.run_dir} ({result.status})")
    for name, entry in result.stages.items():
        secs = entry.get("seconds")
        output.result(f"  {name:<9} {entry['status']:<11} " + (f"{secs:7.1f} s" if secs is not None else ""))
    ck = (result.stages.get("rl", {}).get("result", {}).get("checkpoint")
          or result.stages.get("sft", {}).get("result", {}).get("checkpoint"))
    if ck:
        output.result(f"model:  {ck}")
    if result.report:
        output.result(f"report: {result.report}")
    if result.status == "done":
        output.result(f"chat:   {result.chat_command}")
