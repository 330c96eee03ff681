"""`nanochat slurm render|submit|status`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, DryRunOpt, JsonOpt, ProfileOpt, RunOpt, build_config

app = typer.Typer(help="Run the pipeline on a Slurm cluster.", no_args_is_help=True)

NodesOpt = Annotated[Optional[int], typer.Option("--nodes", help="Nodes per job (slurm.nodes).")]
PhasesOpt = Annotated[Optional[str], typer.Option(
    "--phases", help="Comma list of phases to run, in order: base,mid,sft,rl (default all).")]
FromOpt = Annotated[Optional[str], typer.Option("--from", help="Run this phase and the ones after it (e.g. mid).")]
TimeOpt = Annotated[Optional[str], typer.Option(
    "--time", help="Wall-time limit in a Slurm form: MINUTES, HH:MM:SS or D-HH[:MM[:SS]] (slurm.time).")]
# str, not Path: click turns '' into Path('.'), and an empty --out would write the scripts into the cwd.
OutOpt = Annotated[Optional[str], typer.Option(
    "--out", help="Directory for the sbatch files [default: <home>/runs/<run>].")]
PerPhaseOpt = Annotated[Optional[bool], typer.Option(
    "--per-phase/--one-job", help="One script per phase chained with afterok, or one job for the chain "
                                  "(slurm.per_phase).")]
CommandOpt = Annotated[Optional[str], typer.Option(
    "--command", help="Run `nanochat COMMAND` under srun torchrun instead of training, e.g. 'eval core'.")]

EPILOG = ("Examples:\n\n  nanochat slurm render --profile a100x8\n\n"
          "  nanochat slurm render --profile a100x8 --from mid --time 04:00:00 --out jobs/\n\n"
          "  nanochat slurm submit --profile a100x8 --per-phase --run d20-speedrun")


def _out_dir(out: str | None, default: Path) -> Path:
    if out is None:
        return default
    if not out.strip():
        from nanochat_cli.errors import UsageError

        raise UsageError("--out is empty", "pass a directory for the sbatch files, or leave --out out for "
                                           "<home>/runs/<run>")
    return Path(out)


def _render(ctx, profile, config, nodes, phases, from_, time, run, per_phase, command):
    import shlex

    from nanochat_cli.slurm.render import default_run_id, parse_phases, render_jobs

    chosen = parse_phases(phases, from_)
    resolved = build_config(ctx, profile, config, {"slurm.nodes": nodes, "slurm.time": time, "track.run": run,
                                                   "slurm.per_phase": per_phase})
    from nanochat_cli.errors import UsageError

    try:
        words = shlex.split(command) if command is not None else None
    except ValueError as e:
        raise UsageError(f"--command {command!r} cannot be split into words: {e}", "balance the quotes") from None
    if words == []:  # rendering the training chain instead would run something the user did not ask for
        raise UsageError("--command is empty", "name a nanochat command, e.g. --command 'eval core', or leave "
                                               "--command out to render the training phases")
    run_id = default_run_id(resolved.config)
    return resolved, render_jobs(resolved, chosen, run_id, command=words, config_file=config)


@app.command("render", epilog=EPILOG)
def render(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, nodes: NodesOpt = None,
           phases: PhasesOpt = None, from_: FromOpt = None, time: TimeOpt = None, out: OutOpt = None,
           run: RunOpt = None, per_phase: PerPhaseOpt = None, command: CommandOpt = None,
           json: JsonOpt = False) -> None:
    """Write sbatch files that run the same CLI under srun torchrun, and print how to submit them."""
    from nanochat_cli.paths import Paths
    from nanochat_cli.slurm.render import submit_hint, write_jobs

    resolved, rendered = _render(ctx, profile, config, nodes, phases, from_, time, run, per_phase, command)
    written = write_jobs(rendered, _out_dir(out, Paths.of(resolved.config).run_dir(rendered.run)))
    if json:
        output.emit_json({"run": rendered.run, "log_dir": str(rendered.log_dir), "scripts": [str(p) for p in written],
                          "submit": submit_hint(rendered, written)})
        return
    output.info(f"run {rendered.run}: wrote {len(written)} script(s); logs go to {rendered.log_dir}")
    output.info("submit with (or use `nanochat slurm submit` with the same options):")
    output.result(submit_hint(rendered, written))


@app.command("submit", epilog=EPILOG)
def submit(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, nodes: NodesOpt = None,
           phases: PhasesOpt = None, from_: FromOpt = None, time: TimeOpt = None, out: OutOpt = None,
           run: RunOpt = None, per_phase: PerPhaseOpt = None, command: CommandOpt = None,
           dry_run: DryRunOpt = False, json: JsonOpt = False) -> None:
    """Render and sbatch the jobs (per-phase scripts chained with --dependency=afterok); --dry-run writes nothing."""
    from nanochat_cli.paths import Paths
    from nanochat_cli.slurm.jobs import submit as submit_jobs
    from nanochat_cli.slurm.render import write_jobs

    resolved, rendered = _render(ctx, profile, config, nodes, phases, from_, time, run, per_phase, command)
    paths = Paths.of(resolved.config)
    out_dir = _out_dir(out, paths.run_dir(rendered.run))
    # --dry-run: the sbatch lines for the files a real submit would write, and nothing on disk
    written = ([Path(out_dir).expanduser() / js.filename for js in rendered.scripts] if dry_run
               else write_jobs(rendered, out_dir))
    record = submit_jobs(paths, rendered.run, written, [js.phases for js in rendered.scripts], rendered.log_dir,
                         dry_run=dry_run)
    if json:
        output.emit_json(record)
        return
    for job in record["jobs"]:
        what = ",".join(job["phases"]) or "command"
        if dry_run:
            output.result(" ".join(job["command"]) + f"   # {what}")
        else:
            output.result(f"{job['id']}  {what}  {job['script']}")
    if not dry_run:
        output.info(f"run {rendered.run}: logs in {rendered.log_dir}; `nanochat slurm status --run {rendered.run}`")


@app.command("status")
def status(ctx: typer.Context, run: Annotated[Optional[str], typer.Option(
               "--run", help="Run name given at submit [default: the run submitted last].")] = None,
           profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Show the run's Slurm jobs (state, elapsed time, reason or exit code, log file)."""
    from nanochat_cli.paths import Paths
    from nanochat_cli.slurm.jobs import status as job_status

    resolved = build_config(ctx, profile, config)
    record = job_status(Paths.of(resolved.config), run)
    if json:
        output.emit_json(record)
        return
    output.table(f"run {record['run']}", ["job", "phases", "state", "elapsed", "reason / exit", "log"],
                 ([j.get("id"), ",".join(j["phases"]) or "command", j.get("state"), j.get("elapsed", ""),
                   j.get("exit_code") or j.get("reason", ""), j["log"]] for j in record["jobs"]))
