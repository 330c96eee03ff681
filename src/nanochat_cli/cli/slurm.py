"""`nanochat slurm render|submit|status`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import ConfigOpt, ProfileOpt, build_config
from nanochat_cli.errors import NotBuiltYet

app = typer.Typer(help="Run the pipeline on a Slurm cluster.", no_args_is_help=True)


@app.command("render")
def render(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None,
           nodes: Annotated[Optional[int], typer.Option("--nodes", help="Nodes per job (slurm.nodes).")] = None,
           out: Annotated[Optional[Path], typer.Option("--out", help="Directory for the sbatch files.")] = None) -> None:
    """Write sbatch files that run the same CLI under srun torchrun."""
    build_config(ctx, profile, config, {"slurm.nodes": nodes})
    raise NotBuiltYet("slurm render", 9)


@app.command("submit")
def submit(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None) -> None:
    """Render and sbatch the jobs (chained with afterok)."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("slurm submit", 9)


@app.command("status")
def status(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None) -> None:
    """Show the run's Slurm jobs."""
    build_config(ctx, profile, config)
    raise NotBuiltYet("slurm status", 9)
