"""Which run a training call writes, and which checkpoint it starts from.

`train P --run NAME` writes run NAME: a new run, or an existing one whose phase P has no checkpoint yet (a
phase that already has checkpoints is never trained over: finished → use another name; unfinished →
`nanochat resume --run NAME`). Without a name, base starts a new run with a generated id, and mid/SFT join
the run of the checkpoint they start from when that run has no P yet (so base → mid → SFT stay one run with
one report), else a new run. mid starts from base, SFT from mid: the named run's own when it has one, else
the newest finished one across runs (checkpoint_lookup). `resume` and `speedrun` pass their run explicitly.
Decisions read directory listings and meta.json files only; the run lock is taken by the caller between
`pick_run` and `check_phase_free`, so two processes never both pass the check for one run.
"""

from __future__ import annotations

from dataclasses import dataclass

from nanochat_cli import checkpoint as ck
from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.paths import Paths
from nanochat_cli.runs import DONE, Manifest, check_run_name, is_placeholder, new_run_name
from nanochat_cli.train.phase_data import INIT_FROM


@dataclass
class RunChoice:
    run_id: str
    init_run: str | None     # the run whose INIT_FROM[phase] checkpoint this phase starts from (fresh mid/SFT)
    init_problem: str | None  # why there is none (reported with the other preflight problems)


def _has_checkpoints(paths: Paths, run: str, phase: str) -> bool:
    return bool(ck.list_steps(paths.run_checkpoints(run, phase)))


def _newest_finished_run(paths: Paths, phase: str) -> tuple[str | None, str | None]:
    from nanochat_cli.checkpoint_lookup import find_checkpoints

    try:
        return find_checkpoints(paths, phase)[0].run, None
    except UsageError as e:
        return None, e.message


def pick_run(paths: Paths, phase: str, requested: str | None, run_id: str | None, resume: bool) -> RunChoice:
    """The run to write and, for a fresh mid/SFT, the run holding the checkpoint to start from."""
    pre = None if resume else INIT_FROM[phase]
    if run_id is None and requested and not is_placeholder(requested):
        run_id = check_run_name(requested)
    if resume and run_id is None:
        raise UsageError(f"resuming {phase} needs the run to continue", "name it with --run (see `nanochat runs`)")
    init_run, problem = None, None
    if pre is not None:
        if run_id is not None and _has_checkpoints(paths, run_id, pre):
            init_run = run_id
        else:
            init_run, problem = _newest_finished_run(paths, pre)
    if run_id is None:
        if init_run is not None and not _has_checkpoints(paths, init_run, phase):
            run_id = init_run
        else:
            run_id = new_run_name(requested)
    return RunChoice(run_id, init_run, problem)


def check_phase_free(paths: Paths, run_id: str, phase: str) -> None:
    """A fresh start of `phase` in `run_id` must not write over that run's checkpoints of it: UsageError
    saying how to continue or where else to train (called with the run lock held)."""
    steps = ck.list_steps(paths.run_checkpoints(run_id, phase))
    if not steps:
        return
    status = None
    try:
        status = Manifest.load(paths.run_dir(run_id)).phases.get(phase, {}).get("status")
    except (FileNotFoundError, PreflightError):
        pass
    if status == DONE:
        raise UsageError(f"run {run_id!r} has already trained {phase} (step {steps[-1]}); a trained model is never "
                         "overwritten", f"train into a new run with another --run name, or leave --run unset")
    raise UsageError(f"run {run_id!r} has an unfinished {phase} phase (checkpoint at step {steps[-1]})",
                     f"continue it with `nanochat resume --run {run_id}`, or train into a new run with another "
                     "--run name")
