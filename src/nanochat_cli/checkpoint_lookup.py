"""Which checkpoint a command means by `-i PHASE [--run NAME] [--step N] [--depth D]`.

Without `--run`: the newest *finished* checkpoint of that phase across all runs (a phase whose schedule ran
to its last step), else — when no run finished it — the newest checkpoint of an unfinished run, said as
such. `--run` picks that run; `--step` that step; `--depth` keeps only models of that depth. The choice is
made from meta.json files and directory listings (milliseconds, no hashing); the chosen checkpoint is then
verified and loaded, and a damaged one falls back to the run's previous valid step, then to the next
candidate run, each named on stderr. Callers say which run was chosen in one line (`Found.describe`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nanochat_cli import checkpoint as ck
from nanochat_cli.errors import UsageError
from nanochat_cli.paths import PHASES, Paths
from nanochat_cli.runs import check_run_name, no_such_run, run_names

PRODUCER = {"base": "nanochat train base", "mid": "nanochat train mid", "sft": "nanochat train sft",
            "rl": "nanochat train rl"}


@dataclass
class Found:
    run: str
    phase: str
    directory: Path  # runs/<run>/checkpoints/<phase>
    step: int        # the newest step present (the one that will be tried first)
    finished: bool
    num_iterations: int | None
    depth: int | None
    saved_ns: int

    def describe(self, loaded: ck.Checkpoint) -> str:
        """One line naming the run and step that was loaded (and whether that phase had finished)."""
        n = loaded.meta.get("num_iterations")
        state = "finished" if ck.is_finished(loaded.meta) else f"unfinished: step {loaded.step} of {n or '?'}"
        return f"{self.phase} model: run {self.run}, step {loaded.step} ({state})"


def _depth(meta: dict[str, Any]) -> int | None:
    mc = meta.get("model_config") or {}
    d = mc.get("n_layer")
    return d if isinstance(d, int) else None


def _candidate(paths: Paths, run: str, phase: str) -> Found | None:
    directory = paths.run_checkpoints(run, phase)
    steps = ck.list_steps(directory)
    if not steps:
        return None
    # The newest step with a readable meta.json describes the run's state; a damaged newest one still makes
    # the run a candidate (loading falls back to an older step).
    meta, newest = {}, steps[-1]
    for s in reversed(steps):
        try:
            meta = ck.read_meta(directory / ck.step_dir_name(s))
            break
        except ValueError:
            continue
    try:
        saved_ns = (directory / ck.step_dir_name(newest)).stat().st_mtime_ns
    except OSError:
        saved_ns = 0
    return Found(run, phase, directory, newest, bool(meta) and ck.is_finished(meta), meta.get("num_iterations"),
                 _depth(meta), saved_ns)


def find_checkpoints(paths: Paths, phase: str, run: str | None = None, step: int | None = None,
                     depth: int | None = None) -> list[Found]:
    """Candidate checkpoints of `phase`, best first (see the module docstring). UsageError when there is
    none, naming what would produce one."""
    if phase not in PHASES:
        raise UsageError(f"unknown model source {phase!r}", f"use -i {', '.join(PHASES)}")
    from nanochat_cli.legacy_layout import migrate_if_needed

    migrate_if_needed(paths)
    if run is not None:
        check_run_name(run)
        if not paths.run_dir(run).is_dir():
            raise no_such_run(paths, run)
    names = [run] if run is not None else run_names(paths)
    found = [c for name in names if (c := _candidate(paths, name, phase)) is not None]
    if depth is not None:
        found = [c for c in found if c.depth == depth]
    if step is not None:
        found = [c for c in found if step in ck.list_steps(c.directory)]
    found.sort(key=lambda c: (c.finished, c.saved_ns), reverse=True)
    if not found:
        where = f"run {run!r}" if run else f"any run under {paths.runs}"
        what = f"step {step} of " if step is not None else ""
        deep = f" at depth {depth}" if depth is not None else ""
        raise UsageError(f"no {what}{phase} checkpoint{deep} in {where}",
                         f"run `{PRODUCER[phase]}` (or `nanochat speedrun`) first"
                         + ("; `nanochat runs` lists what there is" if run or depth or step is not None else ""))
    return found


def load_phase_checkpoint(paths: Paths, phase: str, run: str | None = None, step: int | None = None,
                          depth: int | None = None, *, device="cpu", load_optimizer: bool = False,
                          accept: Callable[[dict], str | None] | None = None,
                          quiet: bool = False) -> tuple[Found, ck.Checkpoint]:
    """The best candidate that verifies and loads (with fallbacks named on stderr), and its checkpoint."""
    candidates = find_checkpoints(paths, phase, run, step, depth)
    reasons = []
    for c in candidates:
        try:
            loaded = ck.load_checkpoint(c.directory, step, device=device, load_optimizer=load_optimizer,
                                        quiet=quiet, accept=accept)
        except UsageError as e:
            if step is not None or run is not None:
                raise
            reasons.append(f"run {c.run}: {e.message}")
            if not quiet:
                sys.stderr.write(f"warning: no usable {phase} checkpoint in run {c.run}; trying the next run\n")
            continue
        return c, loaded
    raise UsageError(f"no usable {phase} checkpoint: " + "; ".join(reasons),
                     f"retrain it with `{PRODUCER[phase]}`")
