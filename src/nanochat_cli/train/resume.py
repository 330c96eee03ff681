"""`nanochat resume`: decide what to continue (a plan), then run it with the one loop.

Which run: the one named by `--run` / `track.run` (a Slurm job always names its run, so two jobs that
share a home never continue each other's runs), else the most recently updated run with an unfinished
phase. Without `--from`: that run's first unfinished phase resumes from its newest valid checkpoint of
that run (or starts over when it has none), then the run's remaining phases follow; a named run with
nothing left is "nothing to do" (exit 0), so a requeued job that was signalled just after its phase
finished does not fail. `--phase P` continues only P (resume, start, or nothing when P is done): what
a requeued Slurm step runs, since it knows its phase even when the run never got to write a manifest.
With `--from P`: P's prerequisite checkpoint must exist and verify, then P and the phases after it run
from scratch. The plan is computed from disk only (milliseconds) so `--dry-run` shows exactly what a
real call would do. It does not fetch data or train tokenizers (speedrun does).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.paths import PHASES, Paths
from nanochat_cli.train import checkpoint as ck
from nanochat_cli.train.manifest import DONE, PENDING, Manifest, latest_unfinished_run, list_runs, named_run
from nanochat_cli.train.phases import INIT_FROM


@dataclass
class PlanStep:
    phase: str
    action: str  # "resume" | "start"
    detail: str
    from_step: int | None = None


@dataclass
class ResumePlan:
    run_id: str | None
    run_dir: str | None
    config_file: str | None
    steps: list[PlanStep] = field(default_factory=list)
    note: str | None = None  # why there is nothing to do, when `steps` is empty

    def lines(self) -> list[str]:
        head = f"run {self.run_id}" if self.run_id else "a new run"
        body = [f"  {s.phase}: {s.action} — {s.detail}" for s in self.steps]
        return [f"{head}:"] + (body or [f"  {self.note or 'nothing to do'}"])

    def to_json(self) -> dict:
        return asdict(self)


def _run_checkpoint_step(ckpt_dir: Path, run_id: str) -> int | None:
    """Newest valid checkpoint step in `ckpt_dir` that belongs to `run_id`."""
    step = ck.latest_valid_step(ckpt_dir)
    if step is None:
        return None
    meta = json.loads((ckpt_dir / ck.step_dir_name(step) / ck.META_FILE).read_text(encoding="utf-8"))
    return step if meta.get("run_id") == run_id else None


def _load_named(paths: Paths, name: str) -> Manifest | None:
    path = paths.run_dir(name) / "manifest.json"
    if not path.is_file():
        return None
    try:
        return Manifest.load(paths.run_dir(name))
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"the manifest of run {name!r} ({path}) is unreadable: {e}",
                         "restore it from a backup, or start the phase again with `nanochat train`") from None


def _phase_step(paths: Paths, m: Manifest | None, phase: str) -> PlanStep:
    """Resume `phase` from its newest checkpoint of run `m`, or start it when there is none."""
    ckpt_dir = paths.checkpoint_dir(phase, m.data.get("depth")) if m else None
    step = _run_checkpoint_step(ckpt_dir, m.run_id) if m else None
    if step is not None:
        total = m.phases.get(phase, {}).get("num_iterations", "?")
        return PlanStep(phase, "resume", f"from step {step} of {total} ({ckpt_dir / ck.step_dir_name(step)})", step)
    was = m.phases.get(phase, {}).get("status", PENDING) if m else "never started"
    return PlanStep(phase, "start", f"from step 0 (was {was}, no checkpoint of this run)")


def _plan(m: Manifest | None, name: str | None, paths: Paths, steps: list[PlanStep], note: str | None = None):
    run_id = m.run_id if m else name
    run_dir = paths.run_dir(run_id) if run_id else None
    config_file = run_dir / "config.toml" if run_dir is not None and (run_dir / "config.toml").is_file() else None
    return ResumePlan(run_id, str(run_dir) if run_dir else None, str(config_file) if config_file else None,
                      steps, note)


def plan_resume(paths: Paths, from_phase: str | None = None, run: str | None = None,
                phase: str | None = None) -> ResumePlan:
    """What `nanochat resume [--run NAME] [--from P | --phase P]` will do."""
    name = named_run(run)
    for flag, value in (("--from", from_phase), ("--phase", phase)):
        if value is not None and value not in PHASES:
            raise UsageError(f"{flag} must be one of {', '.join(PHASES)}, not {value!r}")
    if from_phase is not None and phase is not None:
        raise UsageError("--from and --phase ask for different things",
                         "use --from P to rerun P and later phases from scratch, --phase P to continue only P")
    if phase is not None:
        if name is not None:
            m = _load_named(paths, name)
        else:
            runs = list_runs(paths)
            if not runs:
                raise UsageError(f"nothing to resume: no run yet, so --phase {phase} has no run to continue",
                                 f"start one with `nanochat train {phase}` (or name it: --run NAME)")
            m = runs[-1]
        if m is not None and m.phases.get(phase, {}).get("status") == DONE:
            return _plan(m, name, paths, [], f"{phase} is already done; nothing to resume")
        return _plan(m, name, paths, [_phase_step(paths, m, phase)])

    if from_phase is not None:
        runs = list_runs(paths)
        m = _load_named(paths, name) if name is not None else (runs[-1] if runs else None)
        # A new named run starts from the latest run's checkpoints: that run tells the model depth.
        ref = m or (runs[-1] if runs else None)
        depth = ref.data.get("depth") if ref else None
        pre = INIT_FROM[from_phase]
        steps = []
        # The plan is named in the error too, so `--dry-run` shows what would run even when it cannot.
        order = " → ".join(PHASES[PHASES.index(from_phase):])
        if pre is not None:
            if depth is None:
                raise PreflightError(f"--from {from_phase} (plan: {order}) needs a finished {pre} run, and there "
                                     "is no run yet", f"train it first: `nanochat train {pre}`")
            pre_dir = paths.checkpoint_dir(pre, depth)
            if ck.latest_valid_step(pre_dir) is None:
                raise PreflightError(f"--from {from_phase} (plan: {order}) needs a complete {pre} checkpoint in "
                                     f"{pre_dir}",
                                     f"train it first: `nanochat train {pre}` (or `nanochat resume --from {pre}`)")
        for p in PHASES[PHASES.index(from_phase):]:
            init = f"weights from the latest {INIT_FROM[p]} checkpoint" if INIT_FROM[p] else "random init"
            steps.append(PlanStep(p, "start", f"from step 0 ({init})"))
        return _plan(m, name, paths, steps)

    if name is not None:
        m = _load_named(paths, name)
        if m is None:
            have = ", ".join(r.run_id for r in list_runs(paths)[-5:]) or "none yet"
            raise UsageError(f"nothing to resume: there is no run named {name!r} in {paths.runs} (runs: {have})",
                             f"start it with `nanochat train base --run {name}`, or name an existing run")
        if m.next_unfinished() is None:
            return _plan(m, name, paths, [], "every phase is done; nothing to resume")
    else:
        m = latest_unfinished_run(paths)
        if m is None:
            raise UsageError("nothing to resume: no run has an unfinished phase",
                             "start one with `nanochat train base` or `nanochat speedrun`")
    steps = []
    for phase, entry in m.phases.items():
        if entry.get("status") == DONE and not steps:
            continue
        # Only the first unfinished phase can have a checkpoint of this run; the ones after it start over.
        steps.append(_phase_step(paths, m, phase) if not steps else
                     PlanStep(phase, "start", f"from step 0 (was {entry.get('status', PENDING)})"))
    return _plan(m, name, paths, steps)


def execute_plan(cfg, plan: ResumePlan, run_phase_fn=None) -> list:
    """Run the plan's phases in order; stops after a phase that was interrupted."""
    from nanochat_cli.train.loop import run_phase

    from nanochat_cli.train.dist import dist_info

    run_phase_fn = run_phase_fn or run_phase
    paths = Paths.of(cfg)
    rank0 = dist_info().is_rank0  # only rank 0 writes the manifest
    manifest = None
    if rank0 and plan.run_id is not None and (paths.run_dir(plan.run_id) / "manifest.json").is_file():
        manifest = Manifest.load(paths.run_dir(plan.run_id))
        for s in plan.steps:
            manifest.phases.setdefault(s.phase, {"status": PENDING})
            if s.action == "start":
                manifest.phases[s.phase] = {"status": PENDING}
        manifest.save()
    results = []
    for s in plan.steps:
        r = run_phase_fn(cfg, s.phase, resume=s.action == "resume", run_id=plan.run_id, manifest=manifest)
        results.append(r)
        plan.run_id = r.run_id
        if rank0 and manifest is None and (paths.run_dir(r.run_id) / "manifest.json").is_file():
            manifest = Manifest.load(paths.run_dir(r.run_id))
            for later in plan.steps[plan.steps.index(s) + 1:]:
                manifest.phases.setdefault(later.phase, {"status": PENDING})
            manifest.save()
        if r.status != DONE:
            break
    return results
