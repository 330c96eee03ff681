"""`nanochat doctor`: preflight checks with the command that fixes each problem."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, JsonOpt, NprocOpt, ProfileOpt, build_config, command_argv

EPILOG = ("Examples:\n\n  nanochat doctor --profile a100x8 --phase all\n\n"
          "  nanochat doctor --phase mid,sft --json\n\n"
          "  nanochat doctor --canary --profile a100x8          # a minute of real training on the node's 8 GPUs\n\n"
          "  nanochat doctor --canary --nproc 2 --json          # on CPU: 2 gloo processes\n\n"
          "Exit 0: ready; 3: a FAIL row (its fix is in the table) or a failed canary.")


def doctor(ctx: typer.Context,
           phase: Annotated[Optional[str], typer.Option(
               "--phase", help="What to check for: base, mid, sft, rl, eval, all (default: base,mid,sft,rl,eval), none (GPUs, "
                               "home, disk only) or a list such as mid,sft,eval; `tokenizer` in a list means the "
                               "pipeline trains a missing tokenizer (what a Slurm job does).")] = None,
           canary: Annotated[bool, typer.Option(
               "--canary", help="Instead of the checks: train ~20 real steps on every local device (the profile's "
                                "dtype, compile, collectives, data path), check the loss falls, the ranks agree and a "
                                "checkpoint reloads exactly; report tok/s and MFU.")] = False,
           nproc: NprocOpt = None,
           profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Check GPUs, data, tokenizer, datasets, checkpoints, disk and home before spending compute."""
    from nanochat_cli.doctor import parse_phases, run_doctor
    from nanochat_cli.errors import PreflightError

    if canary:
        return _canary(ctx, profile, config, nproc, json)
    if nproc is not None:
        from nanochat_cli.errors import UsageError

        raise UsageError("--nproc goes with --canary", "add --canary, or leave --nproc out")

    phases = parse_phases(phase)
    resolved = build_config(ctx, profile, config)
    report = run_doctor(resolved.config, phases)
    if json:
        output.emit_json(report.to_json())
    else:
        output.table(f"nanochat doctor: {resolved.config.profile}, phases {','.join(phases)}",
                     ["check", "status", "detail", "fix"],
                     ([r.check, r.status.upper(), r.detail, r.fix] for r in report.results))
    if report.failed:
        raise PreflightError(f"{len(report.failed)} preflight check(s) failed: "
                             + ", ".join(dict.fromkeys(r.check for r in report.failed)),
                             "run the fix shown for each FAIL row, then `nanochat doctor` again")
    if not json:
        output.info("doctor: ready")


def _canary(ctx, profile, config, nproc, as_json: bool) -> None:
    from nanochat_cli import dist
    from nanochat_cli.cli.train import maybe_relaunch
    from nanochat_cli.errors import PreflightError
    from nanochat_cli.train.canary import canary_preflight, run_canary

    cfg = build_config(ctx, profile, config, {"dist.nproc": nproc}).config
    maybe_relaunch(cfg, command_argv(ctx), lambda: canary_preflight(cfg))
    try:
        res = run_canary(cfg)
    finally:
        dist.cleanup()
    if dist.dist_info().is_rank0:
        if as_json:
            output.emit_json(res, one_line=True)
        else:
            output.result(canary_lines(res))
    if not res["ok"]:
        failed = [what for what, good in (("the loss did not fall", res["loss_last"] < res["loss_first"]),
                                          ("the ranks' weights differ", res["ranks_agree"]),
                                          ("a reloaded checkpoint does not repeat the losses", res["resume_equal"]))
                  if not good] or ["the loss is not finite"]
        raise PreflightError(f"canary failed on {res['world_size']} × {res['device']}: {'; '.join(failed)} "
                             f"(loss {res['loss_first']:.4f} → {res['loss_last']:.4f})",
                             "do not start the long job; rerun with NANOCHAT_DEBUG=1 and check the device, "
                             "the collectives (NCCL_DEBUG=INFO) and the filesystem of the home")
    if not as_json:
        output.info("canary: ok")


def canary_lines(res: dict) -> str:
    mfu = f"MFU {100 * res['mfu']:.1f}% of {res['peak_flops'] / 1e12:.0f} TFLOP/s per device" if res["mfu"] \
        else "MFU n/a (no peak FLOP/s for this device)"
    tok_s = f"{res['tok_per_s']:,.0f} tok/s" if res["tok_per_s"] else "tok/s n/a"
    return "\n".join([
        f"canary: {res['steps']} steps of d{res['depth']} ({res['params']:,} params) on {res['world_size']} × "
        f"{res['device_name'] or res['device']} ({res['backend'] or 'one process'}), {res['dtype']}, "
        f"{'compiled' if res['compiled'] else 'eager'}, batch {res['batch'][0]} × {res['batch'][1]}",
        f"  loss        {res['loss_first']:.4f} → {res['loss_last']:.4f} "
        f"({'falls' if res['loss_last'] < res['loss_first'] else 'DOES NOT FALL'})",
        f"  ranks agree {'yes' if res['ranks_agree'] else 'NO'} (weights after the all-reduced updates)",
        f"  resume      {'equal' if res['resume_equal'] else 'DIFFERENT'} (checkpoint at step 10 reloaded: "
        f"{', '.join(f'{x:.6f}' for x in res['resumed_losses'])})",
        f"  speed       {tok_s} · {mfu}",
    ])
