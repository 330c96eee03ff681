"""`nanochat train base|mid|sft`: one training loop, three phases."""

from __future__ import annotations

import typer

from nanochat_cli.cli.options import (CompileOpt, ConfigOpt, DepthOpt, DeviceBatchOpt, DeviceOpt, DtypeOpt,
                                      ItersOpt, ModelFileOpt, NprocOpt, ProfileOpt, RunOpt, SeedOpt, WandbOpt,
                                      build_config, training_flags)
from nanochat_cli.errors import NotBuiltYet

app = typer.Typer(help="Train a phase: base (pretraining), mid (midtraining), sft (fine-tuning).",
                  no_args_is_help=True)


def _phase(phase: str, issue: int):
    def command(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, depth: DepthOpt = None,
                device_batch_size: DeviceBatchOpt = None, num_iterations: ItersOpt = None,
                device: DeviceOpt = None, dtype: DtypeOpt = None, compile: CompileOpt = None,
                nproc: NprocOpt = None, seed: SeedOpt = None, run: RunOpt = None, wandb: WandbOpt = None,
                model: ModelFileOpt = None) -> None:
        build_config(ctx, profile, config, training_flags(depth, device_batch_size, num_iterations, device, dtype,
                                                          compile, nproc, seed, run, wandb, model))
        raise NotBuiltYet(f"train {phase}", issue)

    command.__doc__ = {"base": "Pretrain the GPT on the base corpus.",
                       "mid": "Midtrain the base model on conversations, tool use and multiple choice.",
                       "sft": "Fine-tune the midtrained model on chat (loss on assistant tokens only)."}[phase]
    return command


app.command("base")(_phase("base", 5))
app.command("mid")(_phase("mid", 6))
app.command("sft")(_phase("sft", 6))
