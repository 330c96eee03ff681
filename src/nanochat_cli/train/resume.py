"""`nanochat resume`: decide what to continue (a plan), then run it with the one loop.

Without `--from`: the most recently updated run whose manifest has an unfinished phase; that phase
resumes from its newest valid checkpoint of that run (or starts over when it has none), then the run's
remaining phases follow. With `--from P`: P's prerequisite checkpoint must exist and verify, then P and
the phases after it run from scratch. The plan is computed from disk only (milliseconds) so `--dry-run`
shows exactly what a real call would do. It does not fetch data or train tokenizers (speedrun does).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.paths import PHASES, Paths
from nanochat_cli.train import checkpoint as ck
from nanochat_cli.train.manifest import DONE, PENDING, Manifest, latest_unfinished_run, list_runs
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

    def lines(self) -> list[str]:
        head = f"run {self.run_id}" if self.run_id else "a new run"
        return [f"{head}:"] + [f"  {s.phase}: {s.action} — {s.detail}" for s in self.steps]

    def to_json(self) -> dict:
        return asdict(self)


def _run_checkpoint_step(ckpt_dir: Path, run_id: str) -> int | None:
    """Newest valid checkpoint step in `ckpt_dir` that belongs to `run_id`."""
    step = ck.latest_valid_step(ckpt_dir)
    if step is None:
        return None
    meta = json.loads((ckpt_dir / ck.step_dir_name(step) / ck.META_FILE).read_text(encoding="utf-8"))
    return step if meta.get("run_id") == run_id else None


def plan_resume(paths: Paths, depth_of=None, from_phase: str | None = None) -> ResumePlan:
    """What `nanochat resume [--from P]` will do. `depth_of(manifest)` gives a run's model depth."""
    if from_phase is not None:
        if from_phase not in PHASES:
            raise UsageError(f"--from must be one of {', '.join(PHASES)}, not {from_phase!r}")
        runs = list_runs(paths)
        m = runs[-1] if runs else None
        depth = m.data.get("depth") if m else None
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
        return ResumePlan(m.run_id if m else None, str(m.run_dir) if m else None,
                          str(m.run_dir / "config.toml") if m else None, steps)

    m = latest_unfinished_run(paths)
    if m is None:
        raise UsageError("nothing to resume: no run has an unfinished phase",
                         "start one with `nanochat train base` or `nanochat speedrun`")
    depth = m.data.get("depth")
    steps = []
    started = False
    for phase, entry in m.phases.items():
        if entry.get("status") == DONE and not started:
            continue
        started = True
        step = _run_checkpoint_step(paths.checkpoint_dir(phase, depth), m.run_id) if not steps else None
        if step is not None:
            total = entry.get("num_iterations", "?")
            steps.append(PlanStep(phase, "resume", f"from step {step} of {total} "
                                  f"({paths.checkpoint_dir(phase, depth) / ck.step_dir_name(step)})", step))
        else:
            was = entry.get("status", PENDING)
            steps.append(PlanStep(phase, "start", f"from step 0 (was {was}, no checkpoint of this run)"))
    return ResumePlan(m.run_id, str(m.run_dir), str(m.run_dir / "config.toml"), steps)


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
