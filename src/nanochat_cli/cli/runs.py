"""`nanochat runs`: list the runs of a home; `nanochat runs rm NAME` deletes one after confirmation."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import JsonOpt, build_config

app = typer.Typer(help="List the runs in this home (and delete one with `runs rm`).", invoke_without_command=True)

EPILOG = ("Examples: `nanochat runs` · `nanochat runs --json` · `nanochat runs rm exp1` (asks first; --yes for "
          "scripts). A run being trained cannot be removed.")


def _phases(summary) -> str:
    parts = []
    for phase, p in summary.phases.items():
        total = f"/{p['num_iterations']}" if p.get("num_iterations") is not None else ""
        step = f" {p['step']}{total}" if p.get("step") is not None else ""
        parts.append(f"{phase} {p['status']}{step}")
    return ", ".join(parts) or "-"


@app.callback(epilog=EPILOG)
def runs(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List runs: name, profile, phases (status, step/total), size on disk, created."""
    if ctx.invoked_subcommand is not None:
        return
    from nanochat_cli.legacy_layout import migrate_if_needed
    from nanochat_cli.paths import Paths
    from nanochat_cli.runs import summarize_runs

    paths = Paths.of(build_config(ctx, None, None).config)
    migrate_if_needed(paths)
    summaries = summarize_runs(paths)
    if json_:
        output.emit_json([s.to_json() for s in summaries])
        return
    if not summaries:
        output.info(f"no runs under {paths.runs} yet: `nanochat speedrun` or `nanochat train base` makes one")
        return
    output.table(f"runs in {paths.runs}", ["run", "profile", "phases", "size", "created"],
                 [(s.name, s.profile or "?", _phases(s) if not s.problem else f"{_phases(s)} ({s.problem})",
                   output.human_size(s.bytes), s.created or "?") for s in summaries])


@app.command("rm", epilog=EPILOG)
def rm(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The run to delete (see `nanochat runs`).")],
       yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False) -> None:
    """Delete a run: its checkpoints, metrics, logs and report. Asks first."""
    from nanochat_cli.errors import UsageError
    from nanochat_cli.paths import Paths
    from nanochat_cli.runs import check_run_name, dir_size, no_such_run, remove_run

    paths = Paths.of(build_config(ctx, None, None).config)
    check_run_name(name)
    if not paths.run_dir(name).is_dir():
        raise no_such_run(paths, name)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete run {name!r} without confirmation (stdin is not a terminal)",
                             f"pass --yes: `nanochat runs rm {name} --yes`")
        size = output.human_size(dir_size(paths.run_dir(name)))
        if not typer.confirm(f"Delete run {name} ({size}, {paths.run_dir(name)})?", default=False, err=True):
            output.info("nothing deleted")
            return
    freed = remove_run(paths, name)
    output.result(f"deleted run {name} ({output.human_size(freed)})")
