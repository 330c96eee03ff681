"""`nanochat resume`: decide what to continue (a plan), then run it with the one loop.

Which run: the one named by `--run` / `track.run` (a Slurm job always names its run, so two jobs that
share a home never continue each other's runs), else the most recently updated run with an unfinished
phase. Without `--from`: that run's first unfinished phase resumes from its newest valid checkpoint of
that run (or starts over when it has none), then the run's remaining phases follow; a named run with
nothing left is "nothing to do" (exit 0), so a requeued job that was signalled just after its phase
finished does not fail. `--phase P` continues only P (resume, start, or nothing when P is done): what
a requeued Slurm step runs, since it knows its phase even when the run never got to write a manifest.
With `--from P`: P's prerequisite checkpoint must exist (the named run's own, else the newest finished
one), then P and the phases after it run from scratch — in the named run if it has not trained P, else
in the prerequisite's run if that has no P yet, else in a new run: nothing trained is ever trained over.
`--run NAME` is taken literally: a name that is not a run is an error listing the nearest names (except
with --from/--phase, where it names the run to create). The plan is computed from disk only
(milliseconds) so `--dry-run` shows exactly what a real call would do. It does not fetch data or train
tokenizers (speedrun does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.paths import PHASES, Paths
from nanochat_cli import checkpoint as ck
from nanochat_cli.runs import (DONE, PENDING, Manifest, check_run_name, latest_unfinished_run, list_runs,
                               load_named_run)
from nanochat_cli.train.phase_data import INIT_FROM


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


def _newest_step(paths: Paths, run_id: str, phase: str) -> int | None:
    """The newest checkpoint step of the run's phase that is complete (meta.json well-formed, files present);
    hashes are checked when the loop loads it, which falls back past a damaged one."""
    directory = paths.run_checkpoints(run_id, phase)
    for step in reversed(ck.list_steps(directory)):
        if ck.verify_checkpoint(directory / ck.step_dir_name(step), deep=False) is None:
            return step
    return None


def _phase_step(paths: Paths, m: Manifest | None, phase: str, run_id: str | None) -> PlanStep:
    """Resume `phase` from its newest checkpoint of the run, or start it when there is none."""
    step = _newest_step(paths, run_id, phase) if run_id else None
    if step is not None:
        total = (m.phases.get(phase, {}) if m else {}).get("num_iterations", "?")
        path = paths.run_checkpoints(run_id, phase) / ck.step_dir_name(step)
        return PlanStep(phase, "resume", f"from step {step} of {total} ({path})", step)
    was = m.phases.get(phase, {}).get("status", PENDING) if m else "never started"
    return PlanStep(phase, "start", f"from step 0 (was {was}, no checkpoint of this run)")


def _plan(run_id: str | None, paths: Paths, steps: list[PlanStep], note: str | None = None,
          new_run: bool = False):
    run_dir = paths.run_dir(run_id) if run_id else None
    config_file = None
    if run_dir is not None and not new_run:
        # The config the plan's first phase started with (a later phase may have been started with other
        # flags than the run's first one), else the run's.
        first = run_dir / f"config-{steps[0].phase}.toml" if steps else None
        for candidate in (first, run_dir / "config.toml"):
            if candidate is not None and candidate.is_file():
                config_file = candidate
                break
    return ResumePlan(run_id, str(run_dir) if run_dir else None, str(config_file) if config_file else None,
                      steps, note)


def _load_if_any(paths: Paths, name: str) -> Manifest | None:
    check_run_name(name)
    try:
        return Manifest.load(paths.run_dir(name))
    except FileNotFoundError:
        return None


def plan_resume(paths: Paths, from_phase: str | None = None, run: str | None = None,
                phase: str | None = None) -> ResumePlan:
    """What `nanochat resume [--run NAME] [--from P | --phase P]` will do. `run` is taken literally: a name
    that is not a run is an error (or, with --from/--phase, the name of the run to create)."""
    from nanochat_cli.legacy_layout import migrate_if_needed

    migrate_if_needed(paths)
    name = run.strip() if run and run.strip() else None
    for flag, value in (("--from", from_phase), ("--phase", phase)):
        if value is not None and value not in PHASES:
            raise UsageError(f"{flag} must be one of {', '.join(PHASES)}, not {value!r}")
    if from_phase is not None and phase is not None:
        raise UsageError("--from and --phase ask for different things",
                         "use --from P to rerun P and later phases from scratch, --phase P to continue only P")
    if phase is not None:
        if name is not None:
            m = _load_if_any(paths, name)  # a requeued Slurm step may not have written its manifest yet
        else:
            runs = list_runs(paths)
            if not runs:
                raise UsageError(f"nothing to resume: no run yet, so --phase {phase} has no run to continue",
                                 f"start one with `nanochat train {phase}` (or name it: --run NAME)")
            m = runs[-1]
        run_id = m.run_id if m else name
        if m is not None and m.phases.get(phase, {}).get("status") == DONE:
            return _plan(run_id, paths, [], f"{phase} is already done; nothing to resume")
        return _plan(run_id, paths, [_phase_step(paths, m, phase, run_id)])

    if from_phase is not None:
        return _plan_from(paths, from_phase, name)

    if name is not None:
        m = load_named_run(paths, name)
        if m.next_unfinished() is None:
            return _plan(m.run_id, paths, [], "every phase is done; nothing to resume")
    else:
        m = latest_unfinished_run(paths)
        if m is None:
            raise UsageError("nothing to resume: no run has an unfinished phase",
                             "start one with `nanochat train base` or `nanochat speedrun`; `nanochat runs` lists runs")
    steps = []
    for p, entry in m.phases.items():
        if entry.get("status") == DONE and not steps:
            continue
        # Only the first unfinished phase can have a checkpoint of this run; the ones after it start over.
        steps.append(_phase_step(paths, m, p, m.run_id) if not steps else
                     PlanStep(p, "start", f"from step 0 (was {entry.get('status', PENDING)})"))
    return _plan(m.run_id, paths, steps)


def _plan_from(paths: Paths, from_phase: str, name: str | None) -> ResumePlan:
    """`--from P`: P and the phases after it from scratch, in run `name` (which must not have trained P yet)
    or, without one, in the run of the prerequisite checkpoint when it has no P, else a new run. Nothing
    already trained is touched."""
    from nanochat_cli.train.which_run import check_phase_free, pick_run

    order = PHASES[PHASES.index(from_phase):]
    choice = pick_run(paths, from_phase, name, None, resume=False)
    pre = INIT_FROM[from_phase]
    if choice.init_problem:
        # The plan is named in the error too, so `--dry-run` shows what would run even when it cannot.
        raise PreflightError(f"--from {from_phase} (plan: {' → '.join(order)}) needs a {pre} model: "
                             f"{choice.init_problem}", f"train it first: `nanochat train {pre}` (or "
                             f"`nanochat resume --from {pre}`)")
    for p in order:  # never rerun over a phase this run already trained
        check_phase_free(paths, choice.run_id, p)
    new_run = not paths.run_dir(choice.run_id).is_dir()
    steps = []
    for p in order:
        init = (f"weights from run {choice.init_run}'s {pre} checkpoint" if p == from_phase and pre
                else f"weights from this run's {INIT_FROM[p]} model" if INIT_FROM[p] else "random init")
        steps.append(PlanStep(p, "start", f"from step 0 ({init})"))
    return _plan(choice.run_id, paths, steps, new_run=new_run)


def execute_plan(cfg, plan: ResumePlan, run_phase_fn=None) -> list:
    """Run the plan's phases in order; stops after a phase that was interrupted."""
    from nanochat_cli.train.loop import run_phase

    from nanochat_cli.dist import dist_info

    run_phase_fn = run_phase_fn or run_phase
    paths = Paths.of(cfg)
    rank0 = dist_info().is_rank0  # only rank 0 writes the manifest
    manifest = None
    def mark_pending(steps):
        def change(data):
            for s in steps:
                data["phases"].setdefault(s.phase, {"status": PENDING})
                if s.action == "start":  # starts over (it has no checkpoint in this run)
                    data["phases"][s.phase] = {"status": PENDING}
        return change

    if rank0 and plan.run_id is not None and (paths.run_dir(plan.run_id) / "manifest.json").is_file():
        manifest = Manifest.load(paths.run_dir(plan.run_id))
        manifest.update(mark_pending(plan.steps))
    results = []
    for i, s in enumerate(plan.steps):
        r = run_phase_fn(cfg, s.phase, resume=s.action == "resume", run_id=plan.run_id, manifest=manifest)
        results.append(r)
        plan.run_id = r.run_id
        if rank0 and manifest is None and (paths.run_dir(r.run_id) / "manifest.json").is_file():
            manifest = Manifest.load(paths.run_dir(r.run_id))
            manifest.update(mark_pending(plan.steps[i + 1:]))
        if r.status != DONE:
            break
    return results
