"""`nanochat doctor`: preflight checks with the command that fixes each problem."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config

EPILOG = ("Examples:\n\n  nanochat doctor --profile a100x8 --phase all\n\n"
          "  nanochat doctor --phase mid,sft --json\n\nExit 0: ready; 3: a FAIL row (its fix is in the table).")


def doctor(ctx: typer.Context,
           phase: Annotated[Optional[str], typer.Option(
               "--phase", help="What to check for: base, mid, sft, eval, all (default: base,mid,sft,eval), none (GPUs, "
                               "home, disk only) or a list such as mid,sft,eval; `tokenizer` in a list means the "
                               "pipeline trains a missing tokenizer (what a Slurm job does).")] = None,
           profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Check GPUs, data, tokenizer, datasets, checkpoints, disk and home before spending compute."""
    from nanochat_cli.doctor import parse_phases, run_doctor
    from nanochat_cli.errors import PreflightError

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
