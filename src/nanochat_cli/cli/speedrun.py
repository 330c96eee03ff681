"""`nanochat speedrun`: the whole pipeline as one resumable run."""

from __future__ import annotations

import typer

from nanochat_cli.cli.options import ConfigOpt, DryRunOpt, JsonOpt, NprocOpt, ProfileOpt, build_config

EPILOG = ("Examples: `nanochat speedrun` (cpu-tiny: minutes, no network) · `nanochat speedrun --profile cpu-small` "
          "(about an hour) · `nanochat speedrun --profile h100x8 --dry-run` (plan, time and cost). "
          "Interrupt it and run it again: finished stages are kept, unfinished ones continue.")


def speedrun(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, nproc: NprocOpt = None,
             dry_run: DryRunOpt = False, json_: JsonOpt = False) -> int:
    """Data → tokenizer → base → mid → SFT → eval → report, resumable; ends with the chat command."""
    from dataclasses import asdict

    from nanochat_cli.cli import output
    from nanochat_cli.speedrun import dry_run_lines, run_speedrun

    cfg = build_config(ctx, profile, config, {"dist.nproc": nproc}).config
    if dry_run:
        output.result("\n".join(dry_run_lines(cfg)))
        return 0
    if cfg.dist.nproc > 1:
        from nanochat_cli.errors import UsageError

        raise UsageError("speedrun runs its stages in one process; multi-GPU speedruns go through torchrun",
                         f"run `torchrun --standalone --nproc_per_node {cfg.dist.nproc} -m nanochat_cli speedrun "
                         f"--profile {cfg.profile}` or use `nanochat slurm render`")
    result = run_speedrun(cfg, say=output.info)
    if json_:
        output.emit_json(asdict(result))
    else:
        output.result(f"run:    {result.run_dir} ({result.status})")
        for stage, entry in result.stages.items():
            secs = entry.get("seconds")
            output.result(f"  {stage:<9} {entry['status']:<11} " + (f"{secs:7.1f} s" if secs is not None else ""))
        ck = (result.stages.get("rl", {}).get("result", {}).get("checkpoint")
              or result.stages.get("sft", {}).get("result", {}).get("checkpoint"))
        if ck:
            output.result(f"model:  {ck}")
        if result.report:
            output.result(f"report: {result.report}")
        if result.status == "done":
            output.result(f"chat:   {result.chat_command}")
    return result.exit_code
