"""Options shared by many commands, defined once, and the one way a command builds its Config.

A command declares its options with these aliases (default None = "not set"), then calls
`build_config(ctx, profile, config_file, {"train.device_batch_size": value, ...})`: only the flags the
user actually set become the top layer of the precedence chain (see config.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nanochat_cli.cli import output

ProfileOpt = Annotated[Optional[str], typer.Option(
    "--profile", "-P", envvar="NANOCHAT_PROFILE", show_envvar=True,
    help="Named preset to start from: cpu-tiny (default), cpu-small, a100x8, h100x8.")]
# str, not Path: click turns '' into Path('.'), and "config file . does not exist" hides that it was empty.
ConfigOpt = Annotated[Optional[str], typer.Option(
    "--config", "-c", help="TOML file of settings layered over the profile (same keys as `config show`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would be done, do nothing.")]

# Training knobs shared by `train base|mid|sft|rl`, `resume` and `speedrun`.
DepthOpt = Annotated[Optional[int], typer.Option("--depth", help="Transformer blocks (model.depth).")]
DeviceBatchOpt = Annotated[Optional[int], typer.Option(
    "--device-batch-size", help="Sequences per forward pass per device (train.device_batch_size).")]
ItersOpt = Annotated[Optional[int], typer.Option(
    "--num-iterations", help="Optimizer steps; -1 = derive from the data:param ratio (train.num_iterations).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda or mps (train.device).")]
DtypeOpt = Annotated[Optional[str], typer.Option(
    "--dtype", help="auto, float32 or bfloat16; auto picks bf16 only where it is fast (train.dtype).")]
CompileOpt = Annotated[Optional[str], typer.Option("--compile", help="auto, on or off (train.compile).")]
NprocOpt = Annotated[Optional[int], typer.Option(
    "--nproc", help="Processes on this node; >1 starts that many workers under torchrun after checking here first "
                    "(dist.nproc).")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed (train.seed).")]
RunOpt = Annotated[Optional[str], typer.Option(
    "--run", help="Run to write (track.run): a new name, or a run whose phase has not started; default: a new "
                  "run (base) or the run of the checkpoint mid/SFT start from.")]
# Which model a reading command (chat, eval, serve, export) uses: checkpoint_lookup.py.
ModelRunOpt = Annotated[Optional[str], typer.Option(
    "--run", help="Use this run's checkpoint (default: the newest finished one of the phase across runs; "
                  "`nanochat runs` lists them).")]
StepOpt = Annotated[Optional[int], typer.Option(
    "--step", min=0, help="Checkpoint step (default: the run's latest valid one).")]
ModelDepthOpt = Annotated[Optional[int], typer.Option(
    "--depth", help="Only consider models of this depth (default: any).")]
WandbOpt = Annotated[Optional[str], typer.Option("--wandb", help="disabled, offline or online (track.wandb).")]
# str, not Path: click turns '' into Path('.'), which the config could not tell from a real path.
ModelFileOpt = Annotated[Optional[str], typer.Option(
    "--model", help="Train your own GPT module (learn mode) instead of the reference (model.file).")]


def training_flags(depth=None, device_batch_size=None, num_iterations=None, device=None, dtype=None,
                   compile=None, nproc=None, seed=None, run=None, wandb=None, model=None) -> dict[str, Any]:
    """Map the shared training options onto dotted config keys."""
    return {
        "model.depth": depth, "train.device_batch_size": device_batch_size,
        "train.num_iterations": num_iterations, "train.device": device, "train.dtype": dtype,
        "train.compile": compile, "dist.nproc": nproc, "train.seed": seed, "track.run": run,
        "track.wandb": wandb, "model.file": str(model) if model is not None else None,
    }


def command_argv(ctx: typer.Context) -> list[str]:
    """The command line as given to `nanochat` (for launch.py, which starts workers running the same command)."""
    import sys

    obj = ctx.find_root().obj or {}
    return list(obj.get("argv", sys.argv[1:]))


def build_config(ctx: typer.Context | None, profile: str | None, config_file: Path | None,
                 flags: dict[str, Any] | None = None):
    """Resolve the Config for this command (imports pydantic only when a command runs)."""
    from nanochat_cli.config_sources import load_config

    flags = dict(flags or {})
    home = (ctx.obj or {}).get("home") if ctx is not None else None
    if home is not None:
        flags["home"] = str(home)
    resolved = load_config(profile=profile, config_file=config_file, flags=flags)
    from nanochat_cli.dist import is_rank0

    if is_rank0():  # under torchrun every rank builds the config; one copy of each warning is enough
        for line in resolved.warnings:
            output.info(f"warning: {line}")
    return resolved
