"""`nanochat resume`: continue the latest unfinished phase, or rerun from a given phase."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, DryRunOpt, JsonOpt, NprocOpt, ProfileOpt, build_config, command_argv


def resume(ctx: typer.Context,
           from_: Annotated[Optional[str], typer.Option(
               "--from", help="base, mid, sft or rl: rerun that phase and the ones after it from scratch.")] = None,
           phase: Annotated[Optional[str], typer.Option(
               "--phase", help="base, mid, sft or rl: continue only that phase (resume it, start it, or nothing "
                               "when it is done); what a requeued Slurm step runs.")] = None,
           run: Annotated[Optional[str], typer.Option(
               "--run", help="The run to continue (track.run); default: the latest run with an unfinished "
                             "phase.")] = None,
           profile: ProfileOpt = None, config: ConfigOpt = None, nproc: NprocOpt = None,
           dry_run: DryRunOpt = False, json_: JsonOpt = False) -> int:
    """Continue the latest unfinished phase exactly where it stopped (or rerun --from a phase).

    The run's own config.toml is reused; flags and NANOCHAT_* variables override it. A named run
    (--run or track.run) whose phases are all done is nothing to do: exit 0."""
    from pathlib import Path

    from nanochat_cli.cli import output
    from nanochat_cli.cli.train import maybe_relaunch, report_results
    from nanochat_cli.paths import Paths

    flags = {"dist.nproc": nproc, "track.run": run}
    home_cfg = build_config(ctx, profile, config, flags).config
    from nanochat_cli.train.resume import execute_plan, plan_resume

    plan = plan_resume(Paths.of(home_cfg), from_phase=from_, run=home_cfg.track.run, phase=phase)
    if config is None and plan.config_file and Path(plan.config_file).is_file():
        cfg = build_config(ctx, profile, Path(plan.config_file), flags).config
    else:
        cfg = home_cfg
    if dry_run:
        if json_:
            output.emit_json(plan.to_json())
        else:
            output.result("\n".join(plan.lines()))
        return 0
    if not plan.steps:  # a named run with nothing left (e.g. signalled just after its phase finished)
        output.result("\n".join(plan.lines()))
        return 0
    from nanochat_cli.doctor import preflight

    first = plan.steps[0]
    maybe_relaunch(cfg, command_argv(ctx), lambda: preflight(cfg, tuple(s.phase for s in plan.steps),
                                                             fresh=first.action == "start"))
    from nanochat_cli import dist

    if dist.dist_info().is_rank0:
        output.info("\n".join(plan.lines()))
    try:
        results = execute_plan(cfg, plan)
    finally:
        dist.cleanup()
    return report_results(results, json_)
