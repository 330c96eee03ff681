"""`nanochat train base|mid|sft|rl`: one training loop, four phases (they differ by data; RL also by its step)."""

from __future__ import annotations

import sys

import typer

from nanochat_cli.cli.options import (CompileOpt, ConfigOpt, DepthOpt, DeviceBatchOpt, DeviceOpt, DtypeOpt,
                                      ItersOpt, JsonOpt, ModelFileOpt, NprocOpt, ProfileOpt, RunOpt, SeedOpt,
                                      WandbOpt, build_config, command_argv, training_flags)

app = typer.Typer(help="Train a phase: base (pretraining), mid (midtraining), sft (fine-tuning), rl (reinforcement "
                       "learning).",
                  no_args_is_help=True)

EPILOG = ("Examples: `nanochat train base` (cpu-tiny, minutes) · `nanochat train base --run exp1` · "
          "`nanochat train base --profile a100x8 --nproc 8` · Ctrl-C saves a checkpoint and exits 130, SIGTERM/SIGUSR2 "
          "save and exit 75; `nanochat resume` continues exactly. A trained model is never overwritten: a phase "
          "that already has checkpoints in --run NAME is refused.")


def maybe_relaunch(cfg, argv: list[str] | None = None, preflight=None) -> None:
    """`--nproc N` (dist.nproc > 1) outside torchrun: run `preflight` here, then start N workers running this
    command and leave with their exit code (launch.py); return when this process does the work itself."""
    from nanochat_cli.launch import run_here_or_launch

    run_here_or_launch(cfg, sys.argv[1:] if argv is None else argv, preflight)


def report_results(results, as_json: bool) -> int:
    """Print phase results; the exit code is the last phase's: 0 done, 130 after Ctrl-C, EXIT_PREEMPTED (75)
    after SIGTERM/SIGUSR2."""
    from dataclasses import asdict

    from nanochat_cli.cli import output
    from nanochat_cli import dist

    code = results[-1].exit_code if results else 0
    if not dist.dist_info().is_rank0:
        return code
    if as_json:
        output.emit_json([asdict(r) for r in results] if len(results) != 1 else asdict(results[0]))
    else:
        for r in results:
            bpb = r.metrics.get("val_bpb")
            output.result(f"{r.phase}: {r.status} at step {r.step}/{r.num_iterations}; loss "
                          f"{r.metrics.get('loss', float('nan')):.4f}" + (f", val bpb {bpb:.4f}" if bpb else "")
                          + f"; checkpoint {r.checkpoint or 'none'}; run {r.run_dir}")
    return code


def _phase(phase: str):
    def command(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, depth: DepthOpt = None,
                device_batch_size: DeviceBatchOpt = None, num_iterations: ItersOpt = None,
                device: DeviceOpt = None, dtype: DtypeOpt = None, compile: CompileOpt = None,
                nproc: NprocOpt = None, seed: SeedOpt = None, run: RunOpt = None, wandb: WandbOpt = None,
                model: ModelFileOpt = None, json_: JsonOpt = False) -> int:
        flags = training_flags(depth, device_batch_size, num_iterations, device, dtype, compile, nproc, seed, run,
                               wandb, model)
        if phase in ("mid", "sft", "rl"):  # these flags set the phase's own [mid]/[sft]/[rl] values
            for key in ("num_iterations", "device_batch_size"):
                flags[f"{phase}.{key}"] = flags.pop(f"train.{key}")
        cfg = build_config(ctx, profile, config, flags).config
        from nanochat_cli.doctor import preflight

        maybe_relaunch(cfg, command_argv(ctx), lambda: preflight(cfg, (phase,)))
        from nanochat_cli import dist
        from nanochat_cli.train.loop import run_phase

        try:
            result = run_phase(cfg, phase)
        finally:
            dist.cleanup()
        return report_results([result], json_)

    command.__doc__ = {"base": "Pretrain the GPT on the base corpus.",
                       "mid": "Midtrain the base model on conversations, tool use and multiple choice.",
                       "sft": "Fine-tune the midtrained model on chat (loss on assistant tokens only).",
                       "rl": "Reinforce the SFT model's right answers: sample, reward, policy gradient (GSM8K or "
                             "generated arithmetic)."}[phase]
    return command


for _name in ("base", "mid", "sft", "rl"):
    app.command(_name, epilog=EPILOG)(_phase(_name))
