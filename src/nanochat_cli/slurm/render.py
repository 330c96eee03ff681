"""Render sbatch scripts that run the same `nanochat` CLI under `srun torchrun` on a Slurm cluster.

One jinja2 template (`templates/job.sbatch.j2`) gives either one job that runs the whole phase chain or
one script per phase (chained with `afterok` by `slurm submit`). The design choice: the job re-runs the
CLI with the render-time config exported as `NANOCHAT_*` variables, so a job and `nanochat config show`
on the login node agree; rendering costs ~50 ms and writes nothing but the scripts and the log dir.
Safety: `#SBATCH` values are validated by pattern (sbatch parses those lines itself, quoting cannot
help there); every value in the script body passes through `shlex.quote`. Invalid values are exit 2.
It does not submit (see jobs.py) and does not check data or GPUs (that is `nanochat doctor`, run first
inside the job).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from nanochat_cli.errors import UsageError
from nanochat_cli.paths import PHASES, Paths, atomic_write_text, ensure_dir

# Characters sbatch reads literally in a `#SBATCH --opt=value` line: no spaces, quotes, `$`, `;`, `#`.
SBATCH_SAFE = re.compile(r"[A-Za-z0-9._/+,:@%=-]+")
# Keys the job sets itself (or that only matter on the login node); not re-exported as overrides.
_NOT_EXPORTED = ("home", "profile", "track.run", "dist.nnodes")


@dataclass(frozen=True)
class Step:
    """One step of a job: `nanochat ARGS` the first time, `nanochat RESTART_ARGS` after a requeue; `where`:
    "torchrun" (srun torchrun on every node: training, evals, the canary) or "here" (the batch shell on the
    first node: tokenizer, report)."""

    name: str
    args: tuple[str, ...]
    restart_args: tuple[str, ...]
    where: str = "torchrun"


@dataclass
class JobScript:
    job_name: str
    filename: str
    phases: tuple[str, ...]
    text: str
    after: str | None = None  # filename of the script this one must follow (per-phase chains)


@dataclass
class Rendered:
    run: str
    log_dir: Path
    scripts: list[JobScript] = field(default_factory=list)


def parse_phases(phases: str | None, from_phase: str | None) -> tuple[str, ...]:
    """`--phases base,mid,sft` or `--from mid` (= mid and everything after it); default all (base → … → rl)."""
    from nanochat_cli.phase_list import parse_phase_list

    if phases and from_phase:
        raise UsageError("--phases and --from cannot be combined", "use --phases mid,sft or --from mid")
    if from_phase is not None:
        (start,) = parse_phase_list(from_phase, PHASES, "--from")
        return PHASES[PHASES.index(start):]
    return PHASES if phases is None else parse_phase_list(phases, PHASES, "--phases")


def default_run_id(cfg) -> str:
    """The run this render belongs to: track.run, else a generated `<profile>-<UTC timestamp>-<hex>`."""
    from nanochat_cli.runs import generate_run_id

    return cfg.track.run or generate_run_id(cfg.profile)


def _sbatch_value(key: str, value: str) -> str:
    if not SBATCH_SAFE.fullmatch(value):
        raise UsageError(f"{key} {value!r} cannot be written into an #SBATCH line (spaces, quotes, `$`, `;` or "
                         f"newlines are not allowed there)", f"choose a plain value for {key}")
    return value


def _overrides(layers) -> list[tuple[str, str]]:
    """Non-slurm values set by env, .env.local or flags at render time, as NANOCHAT_* exports: the job
    then resolves the same config even if it is submitted from another shell."""
    from nanochat_cli.config_sources import flatten

    merged: dict[str, object] = {}
    for name, layer in layers.ordered():
        if name in ("env.local", "env", "flag"):
            merged.update(flatten(layer))
    out = []
    for key, value in sorted(merged.items()):
        if key in _NOT_EXPORTED or key.startswith("slurm."):
            continue
        text = json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)
        out.append(("NANOCHAT_" + key.upper().replace(".", "__"), text))
    return out


def _words(args: tuple[str, ...]) -> str:
    """Shell words with a leading space ('' for none): the one place args enter the script."""
    return "".join(" " + shlex.quote(a) for a in args)


def _template():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("nanochat_cli.slurm", "templates"), undefined=StrictUndefined,
                      autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["q"] = lambda v: shlex.quote(str(v))
    return env.get_template("job.sbatch.j2")


def render_jobs(resolved, phases: tuple[str, ...], run: str, command: list[str] | None = None,
                config_file: Path | None = None) -> Rendered:
    """Render the job script(s) for `phases` (or for one custom `nanochat COMMAND...`) as text."""
    cfg, s = resolved.config, resolved.config.slurm
    from nanochat_cli.runs import check_run_name, is_placeholder

    check_run_name(run)  # a directory, a job label and a wandb id: the one naming rule of runs.py
    if is_placeholder(run):
        # Training swaps placeholder names for generated ids, so the job's logs and the run would part ways.
        raise UsageError(f"run name {run!r} looks like a placeholder", "pass a descriptive --run, e.g. d20-a100x8-v1")
    paths = Paths.of(cfg)
    log_dir = Path(os.path.abspath(s.log_dir.expanduser())) if s.log_dir else paths.run_logs(run)
    _sbatch_value("slurm.log_dir (or the home it derives from)", str(log_dir))
    conf = ("--config", str(Path(os.path.abspath(Path(config_file).expanduser())))) if config_file else ()
    placement = [(k, _sbatch_value(f"slurm.{k}", v)) for k, v in
                 (("partition", s.partition), ("account", s.account), ("qos", s.qos)) if v]
    common = dict(
        profile=cfg.profile, run=run, nodes=s.nodes, gpus_per_node=s.gpus_per_node, cpus_per_task=s.cpus_per_task,
        time=_sbatch_value("slurm.time", s.time), placement=placement, log_dir=str(log_dir), exclusive=s.exclusive,
        extra_directives=list(s.extra_directives),  # validated by the config (config._check_directive)
        signal_seconds=s.signal_seconds, mail_type=_sbatch_value("slurm.mail_type", s.mail_type),
        mail_user=_sbatch_value("slurm.mail_user", s.mail_user) if s.mail_user else None,
        modules=s.modules, venv_activate=str(Path(s.venv).expanduser() / "bin" / "activate") if s.venv else None,
        home=str(paths.home), overrides=_overrides(resolved.layers), hf_home=str(paths.datasets),
        wandb_dir=str(paths.wandb), tiktoken_dir=str(paths.tiktoken),
        omp_threads=max(1, s.cpus_per_task // cfg.dist.nproc), shutdown_timeout=max(10, s.signal_seconds - 30),
        extra_env=[tuple(item.split("=", 1)) for item in s.env], rdzv_host=s.rdzv_host, state_dir=str(paths.slurm_state(run)),
        nproc=cfg.dist.nproc,
    )
    template = _template()
    out = Rendered(run=run, log_dir=log_dir)

    def one(job_name: str, steps: list[Step], doctor: tuple[str, ...], description: str, job_phases,
            after: str | None = None, state: str = "steps") -> None:
        filename = f"{job_name}.sbatch"
        text = template.render(**common, job_name=_sbatch_value("slurm.job_name", job_name), steps=[
            dict(name=st.name, args=_words(st.args), restart_args=_words(st.restart_args), where=st.where)
            for st in steps], doctor_args=_words(doctor + conf), description=description, filename=filename,
            after=after, state_file=state)
        out.scripts.append(JobScript(job_name, filename, tuple(job_phases), text, after))

    if command:
        step = Step("command", tuple(command), tuple(command))
        one(s.job_name, [step], ("--phase", "none"), f"A custom nanochat command (see the last step) on {s.nodes} node(s).",
            (), state="job-$SLURM_JOB_ID")  # a command runs whenever its job does: its record is the job's own
        return out
    jobs = pipeline_jobs(cfg, phases, run, conf)
    if s.per_phase:
        prev = None
        for i, (p, steps, stages) in enumerate(jobs):
            name = f"{s.job_name}-{p}"
            one(name, steps, ("--phase", ",".join(stages)), f"Phase {p} of run {run} on {s.nodes} node(s)"
                + (" (and the evaluations and report of the chain)" if i == len(jobs) - 1 and s.evals else "") + ".",
                (p,), after=prev)
            prev = f"{name}.sbatch"
    else:
        steps = [st for _, job_steps, _ in jobs for st in job_steps]
        what = " → ".join(st.name for st in steps)
        one(s.job_name, steps, ("--phase", ",".join(jobs[0][2])),
            f"The pipeline of run {run} on {s.nodes} node(s), one job: {what}.", phases)
    return out


def pipeline_jobs(cfg, phases: tuple[str, ...], run: str, conf: tuple[str, ...]) -> list[tuple[str, list[Step], tuple]]:
    """(phase, its job's steps, what that job's doctor checks) per training phase; one job runs them all in order.

    The steps: canary (slurm.canary) → tokenizer train when missing, and its eval (when base is trained with a
    BPE tokenizer) → each phase → the evaluations of the trained phases (CORE — bpb on embedded-corpus
    profiles — of base, the chat suite of mid and SFT) → the report (slurm.evals). The canary and tokenizer
    go with the first phase, the evaluations and report with the last. The first job's doctor checks the
    whole chain (a missing eval bundle is found before base trains, not after); the others check their own
    phase. Every step is idempotent for the run: a requeued or resubmitted job skips what is done."""
    from nanochat_cli.eval.suite import base_eval_kind

    s = cfg.slurm
    head: list[Step] = []
    head_stages: tuple[str, ...] = ()
    if s.canary:
        head.append(Step("canary", ("doctor", "--canary") + conf, ("doctor", "--canary") + conf))
    if "base" in phases and cfg.tokenizer.kind == "bpe":
        train_tok = ("tokenizer", "train", "--if-missing") + conf
        head += [Step("tokenizer", train_tok, train_tok, "here"),
                 Step("tokenizer-eval", ("tokenizer", "eval") + conf, ("tokenizer", "eval") + conf, "here")]
        head_stages = ("tokenizer",)
    tail: list[Step] = []
    if s.evals:
        for p in phases:
            kind = base_eval_kind(cfg) if p == "base" else "chat"
            args = ("eval", kind, "-i", p, "--run", run) + conf
            tail.append(Step(f"eval-{p}", args, args))
        report = ("report", "--run", run) + conf
        tail.append(Step("report", report, report, "here"))
    evals = ("eval",) if s.evals else ()
    # A requeued step continues its own phase of its own run: `resume --phase P --run R` resumes from the
    # checkpoint, starts P when the signal came before P wrote anything, and is a no-op when P had finished.
    training = [Step(p, ("train", p) + conf, ("resume", "--phase", p, "--run", run) + conf) for p in phases]
    jobs = []
    for i, (p, step) in enumerate(zip(phases, training)):
        first, last = i == 0, i == len(phases) - 1
        steps = (head if first else []) + [step] + (tail if last else [])
        stages = (head_stages + phases + evals) if first else (p,) + (evals if last else ())
        jobs.append((p, steps, stages))
    return jobs


def write_jobs(rendered: Rendered, out_dir: Path) -> list[Path]:
    """Write the scripts (atomically, executable) and create the log dir sbatch needs to exist."""
    from nanochat_cli.paths import check_writable_dir

    out_dir = Path(out_dir).expanduser()
    # Both checked before either is created: a bad log dir must not leave an empty --out dir behind.
    check_writable_dir(out_dir, "the sbatch directory",
                       "pass --out DIR with a directory you can write (it is created if missing)")
    check_writable_dir(rendered.log_dir, "the job log directory",
                       "set slurm.log_dir to a writable directory, or unset it for <home>/runs/<run>/logs")
    ensure_dir(out_dir)
    ensure_dir(rendered.log_dir)
    written = []
    for js in rendered.scripts:
        path = out_dir / js.filename
        atomic_write_text(path, js.text)
        path.chmod(0o755)
        written.append(path)
    return written


def submit_hint(rendered: Rendered, written: list[Path]) -> str:
    """How to submit what was written, as shell lines."""
    if len(written) == 1:
        return f"sbatch {shlex.quote(str(written[0]))}"
    lines = [f"jid=$(sbatch --parsable {shlex.quote(str(written[0]))})"]
    lines += [f"jid=$(sbatch --parsable --dependency=afterok:$jid {shlex.quote(str(p))})" for p in written[1:]]
    return "\n".join(lines)
