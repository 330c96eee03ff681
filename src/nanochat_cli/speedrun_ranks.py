"""The speedrun on N processes: which stages run on every rank, and who starts them.

As nanochat's speedrun.sh does it: data and tokenizer (and the report) run in one process, each training
and eval stage on every GPU of the node (`ON_EVERY_RANK`). Two ways in, one record (speedrun.json):

- `nanochat speedrun --nproc N` (or a profile's dist.nproc, 8 on a100x8/h100x8) from a plain shell: this
  process holds the run, runs the one-process stages itself and starts each per-rank stage as
  `torchrun … nanochat speedrun --stage S --run R` through launch.py (`launched_stages`). The workers write
  under its run lock; their errors come back as one line with their exit code, 75/130 as an interrupted stage.
  Cost: one torch start per stage (seconds against hours of training).
- `torchrun … -m nanochat_cli speedrun` (already N processes): rank 0 runs the speedrun and tells the other
  ranks which per-rank stage to run next over a gloo group whose timeout (7 days) outlasts any one-process stage
  — a fineweb download can take an hour, which an nccl barrier would not wait for (`conduct` / `follow`).
  A SIGTERM while the followers wait is rank 0's to handle: they keep waiting for its word.
`--stage S --run R` (hidden) is the worker side of the first way: one stage on this rank (`run_one_stage`).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Callable

from nanochat_cli import dist
from nanochat_cli.errors import NanochatError, PreflightError, UsageError
from nanochat_cli.speedrun import (ON_EVERY_RANK, StageInterrupted, StageRunner, run_speedrun, run_stage_here,
                                   stage_argv)

FOLLOWER_TIMEOUT = timedelta(days=7)


def launched_stages(argv: list[str], nproc: int) -> StageRunner:
    """A stage runner for a plain process: per-rank stages under torchrun (launch.py), the others here."""
    def run(stage: str, cfg, run_id: str) -> dict:
        if stage not in ON_EVERY_RANK:
            return run_stage_here(stage, cfg, run_id)
        from nanochat_cli.launch import launch

        code = launch(stage_argv(stage, run_id, argv), nproc)  # raises WorkerFailed with their line
        if code:
            raise StageInterrupted(stage, code)
        return summary_from_run(cfg, run_id, stage)

    return run


def summary_from_run(cfg, run_id: str, stage: str) -> dict:
    """What a per-rank stage returned, read back from the run its workers wrote (manifest phases and evals)."""
    from nanochat_cli.paths import Paths
    from nanochat_cli.runs import Manifest

    manifest = Manifest.load(Paths.of(cfg).run_dir(run_id))
    if stage == "eval":
        evals = manifest.data.get("evals", {})
        return {k: v for k, v in evals.items() if k in ("base_bpb", "base_core", "base_mini", "mid_chat",
                                                         "sft_chat", "seconds")}
    phase = manifest.phases.get(stage, {})
    return {"step": phase.get("step"), "checkpoint": phase.get("checkpoint"),
            **{k: v for k, v in (phase.get("metrics") or {}).items() if isinstance(v, (int, float))}}


def run_one_stage(cfg, stage: str, run_id: str) -> int:
    """`speedrun --stage S --run R` on one rank: the stage, and its exit code (0, or 75/130 when a signal
    stopped it at a checkpoint); errors propagate (the launching process prints the first one)."""
    if stage not in ON_EVERY_RANK:
        raise UsageError(f"--stage {stage} runs in one process, not on every rank",
                         f"use one of {', '.join(ON_EVERY_RANK)}, or run `nanochat speedrun`")
    try:
        run_stage_here(stage, cfg, run_id)
    except StageInterrupted as e:
        return e.exit_code
    return 0


# ---------------------------------------------------------------------------------------------------
# Already under torchrun: rank 0 conducts, the other ranks follow.

def speedrun_under_torchrun(cfg, say: Callable[[str], None]):
    """Every rank calls this; rank 0 returns the SpeedrunResult, the others leave with its exit code."""
    import torch.distributed as tdist

    from nanochat_cli.model.precision import resolve_device

    dist.init(cfg.dist.backend, resolve_device(cfg).type)
    group = tdist.new_group(backend="gloo", timeout=FOLLOWER_TIMEOUT)
    if dist.dist_info().is_rank0:
        return conduct(cfg, say, group)
    raise SystemExit(follow(cfg, group))


def _send(group, message) -> None:
    import torch.distributed as tdist

    tdist.broadcast_object_list([message], src=0, group=group)


def _receive(group):
    import torch.distributed as tdist

    box = [None]
    tdist.broadcast_object_list(box, src=0, group=group)
    return box[0]


def _gather(group, outcome) -> list:
    import torch.distributed as tdist

    out = [None] * tdist.get_world_size(group)
    tdist.all_gather_object(out, outcome, group=group)
    return out


def _attempt(stage: str, cfg, run_id: str) -> tuple:
    """This rank's outcome of a per-rank stage, as data the ranks can exchange."""
    try:
        return ("ok", run_stage_here(stage, cfg, run_id))
    except StageInterrupted as e:
        return ("interrupted", e.exit_code)
    except NanochatError as e:
        return ("error", type(e).__name__, e.message, e.fix, e.exit_code)
    except Exception as e:  # noqa: BLE001 - a bug on one rank must not leave the others waiting in the gather
        return ("crash", f"{type(e).__name__}: {' '.join(str(e).split())[:300]}", e)


def conduct(cfg, say, group):
    """Rank 0: the speedrun, with each per-rank stage run together with the followers."""
    def run(stage: str, cfg, run_id: str) -> dict:
        if stage not in ON_EVERY_RANK:
            return run_stage_here(stage, cfg, run_id)
        _send(group, ("run", stage, run_id))
        mine = _attempt(stage, cfg, run_id)
        outcomes = _gather(group, mine[:2] if mine[0] == "crash" else mine)
        if mine[0] == "crash":
            raise mine[2]
        for rank, o in enumerate(outcomes):
            if o[0] == "error":
                kind = {"PreflightError": PreflightError, "UsageError": UsageError}.get(o[1], NanochatError)
                raise kind(o[2], o[3], o[4])
            if o[0] == "crash":
                raise NanochatError(f"rank {rank} crashed in the {stage} stage: {o[1]}")
        codes = [o[1] for o in outcomes if o[0] == "interrupted"]
        if codes:
            raise StageInterrupted(stage, codes[0])
        return mine[1]

    code = 1
    try:
        result = run_speedrun(cfg, say, run)
        code = result.exit_code
        return result
    except NanochatError as e:
        code = e.exit_code
        raise
    finally:
        _send(group, ("end", code))


def follow(cfg, group) -> int:
    """Ranks 1..N-1: run the per-rank stages rank 0 names, until it says the speedrun ended (its exit code)."""
    from nanochat_cli.signals import StopFlag

    with StopFlag():  # a signal while waiting: rank 0 gets it too and decides; the stages install their own
        while True:
            message = _receive(group)
            if message[0] == "end":
                return int(message[1])
            _, stage, run_id = message
            outcome = _attempt(stage, cfg, run_id)
            if outcome[0] == "crash":
                sys.stderr.write(f"rank {dist.dist_info().rank}: {outcome[1]}\n")
                outcome = outcome[:2]
            _gather(group, outcome)

