"""Preflight checks: everything the chosen profile's pipeline needs, verified before compute is spent
(`nanochat doctor`).

Each check is a plain function `check(ctx) -> list[Result]` in `CHECKS`; another module adds its own
with `@register`. Checks load things for real and through the same functions the phases use — parquet
footers, the tokenizer, each part of the mid/SFT mixture the profile trains on (`train.preflight`), the tasks
of the chat suite it evaluates with (`eval.chat_eval.check_chat_tasks`), the CORE bundle when it runs CORE —
because "the directory exists" is what fails at 3 a.m. on a compute node, and a check of a dataset the profile
never loads (cpu-tiny trains on packaged data) is a false alarm. Cost: 1–10 s (loading the hub datasets from
their Arrow cache dominates on the GPU profiles). Exit 3 when any row FAILs; WARN rows do not stop a job.
This module only reports; it never downloads or repairs anything (loading the tokenizer moves a pre-versions
<home>/tokenizer into tokenizers/, as every command does: a move, no change).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from typing import Callable

from nanochat_cli import checkpoint as ck
from nanochat_cli.errors import NanochatError, PreflightError, UsageError
from nanochat_cli.paths import PHASES, Paths
from nanochat_cli import runs
from nanochat_cli.runs import PLACEHOLDER_NAMES

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
# Bytes per parameter in one checkpoint: fp32 weights (4) + optimizer state (~8: AdamW's two moments,
# Muon's one momentum buffer plus its share), a ~12 B/param upper bound used for the disk estimate.
CKPT_BYTES_PER_PARAM = 12


@dataclass
class Result:
    check: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""


@dataclass
class Context:
    cfg: object  # Config
    phases: tuple[str, ...]
    paths: Paths


Check = Callable[[Context], "list[Result]"]
CHECKS: list[Check] = []


def register(fn: Check) -> Check:
    """Add a check to the doctor (modules call this at import of their own doctor hooks)."""
    CHECKS.append(fn)
    return fn


# What `--phase` may name, in pipeline order. `tokenizer` is the pipeline's tokenizer stage (a Slurm job
# trains one when it is missing), so with it a missing tokenizer is expected, not a failure; `eval` is the
# evaluations of the trained models (CORE or bpb of base, the chat suite of mid and SFT).
STAGES = ("tokenizer", *PHASES, "eval")
ALL = (*PHASES, "eval")


def parse_phases(text: str | None) -> tuple[str, ...]:
    """`all` (default: base, mid, sft, eval), one stage, a comma list in pipeline order (the first training
    phase's predecessor must have a checkpoint: mid needs base, sft needs mid), or `none` (only GPUs, home,
    disk, run name)."""
    from nanochat_cli.phase_list import parse_phase_list

    return parse_phase_list("all" if text is None else text, STAGES, "--phase", {"all": ALL, "none": ()})


def training_phases(ctx: "Context") -> tuple[str, ...]:
    return tuple(p for p in ctx.phases if p in PHASES)


# ---------------------------------------------------------------------------------------------------
# The checks, in the order the table shows them.

@register
def check_gpus(ctx: Context) -> list[Result]:
    from nanochat_cli.hardware import cuda_devices, gpu_shortfall

    cfg = ctx.cfg
    device, need = cfg.train.device, cfg.dist.nproc
    if device in ("cpu", "mps"):
        return [Result("gpus", SKIP, f"train.device is {device}: no CUDA GPUs needed")]
    short = gpu_shortfall(cfg)
    if short is not None:
        return [Result("gpus", FAIL, *short)]
    n, how = cuda_devices()
    if device == "auto" and n == 0:
        return [Result("gpus", SKIP, f"train.device is auto and no GPU is usable ({how}): training uses the CPU")]
    extra = [] if cfg.slurm.gpus_per_node in (0, need) else [Result(
        "gpus", WARN, f"slurm.gpus_per_node = {cfg.slurm.gpus_per_node} but dist.nproc = {need}",
        f"set slurm.gpus_per_node = {need} so the job requests what training uses")]
    note = f"{n} CUDA GPU(s) usable, {need} used ({'auto → ' if device == 'auto' else ''}cuda)" + (
        f"; {n - need} idle" if n > need else "")
    return [Result("gpus", OK if n == need else WARN, note)] + extra


@register
def check_home(ctx: Context) -> list[Result]:
    home = ctx.paths.home
    probe = home
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return [Result("home writable", FAIL, f"{probe} is not a directory", "point --home at a directory")]
    try:  # a real write: quotas and read-only mounts pass os.access()
        fd, tmp = tempfile.mkstemp(prefix=".doctor-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        return [Result("home writable", FAIL, f"cannot write in {probe}: {e.strerror}",
                       "use a writable --home / NANOCHAT_HOME (e.g. on your scratch filesystem)")]
    where = "" if probe == home else f" (does not exist yet; {probe} is writable)"
    return [Result("home writable", OK, f"{home}{where}")]


@register
def check_disk(ctx: Context) -> list[Result]:
    cfg = ctx.cfg
    probe = ctx.paths.home
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    from nanochat_cli.model.sizes import config_counts

    per_ckpt = config_counts(cfg)["total"] * CKPT_BYTES_PER_PARAM
    n_phases = len(training_phases(ctx))
    need = per_ckpt * cfg.train.keep_last * n_phases
    detail = (f"{free / 1e9:.1f} GB free at {probe}; {n_phases} phase(s) × {cfg.train.keep_last} checkpoints "
              f"× ~{per_ckpt / 1e9:.2f} GB need ~{need / 1e9:.1f} GB")
    fix = "free space there, or point --home / NANOCHAT_HOME at a larger filesystem"
    if free < need:
        return [Result("disk space", FAIL, detail, fix)]
    if free < 2 * need:
        return [Result("disk space", WARN, detail + " (less than 2× headroom)", fix)]
    return [Result("disk space", OK, detail)]


@register
def check_shards(ctx: Context) -> list[Result]:
    if not ctx.phases:
        return []
    if "base" not in ctx.phases and "tokenizer" not in ctx.phases:
        return [Result("base data", SKIP, "not needed: base is not among the phases")]
    import pyarrow.parquet as pq

    cfg, d = ctx.cfg, ctx.paths.base_data
    fix = "nanochat data fetch base"
    shards = sorted(d.glob("shard_*.parquet")) if d.is_dir() else []
    if len(shards) < 2:
        return [Result("base data", FAIL, f"{len(shards)} shard(s) in {d}; training needs at least 2 "
                                          "(the last one is validation)", fix)]
    bad, rows = [], 0
    for p in shards:
        try:  # the footer only: a truncated download fails here in milliseconds
            meta = pq.read_metadata(p)
            if "text" not in meta.schema.names:
                bad.append(f"{p.name} (no text column)")
            rows += meta.num_rows
        except Exception as e:  # pyarrow raises ArrowInvalid/OSError for torn files
            bad.append(f"{p.name} ({type(e).__name__})")
    if bad:
        return [Result("base data", FAIL, f"unreadable shard(s): {', '.join(bad[:5])}"
                                          + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""),
                       f"delete them and run `{fix}` again")]
    detail = f"{len(shards)} shards, {rows:,} documents, footers readable"
    if cfg.data.source == "fineweb" and len(shards) < cfg.data.shards:
        return [Result("base data", WARN, f"{detail}; data.shards asks for {cfg.data.shards}", fix)]
    return [Result("base data", OK, detail)]


@register
def check_tokenizer(ctx: Context) -> list[Result]:
    if not ctx.phases:
        return []
    if not {"tokenizer", "base"} & set(ctx.phases):
        return [Result("tokenizer", SKIP, "not needed: mid, SFT and evals use the tokenizer their checkpoint "
                                          "was trained with (checked when it loads)")]
    from nanochat_cli.tokenizer import load_tokenizer

    try:  # the default version, fully validated (a pre-versions <home>/tokenizer is migrated first)
        tok = load_tokenizer(ctx.cfg)
    except NanochatError as e:  # missing (preflight) or damaged (failure): both stop a job
        if "tokenizer" in ctx.phases:  # the pipeline's tokenizer stage trains it (on the base data above)
            t = ctx.cfg.tokenizer
            return [Result("tokenizer", OK, f"to be trained by the tokenizer stage ({e.message}; vocab "
                                            f"{t.vocab_size:,} on {t.train_chars:,} chars)")]
        return [Result("tokenizer", FAIL, e.message, e.fix or "nanochat tokenizer train")]
    if getattr(tok, "fingerprint", None) is None:
        return [Result("tokenizer", OK, f"byte-level, vocab {tok.vocab_size:,} (tokenizer.kind = byte; no files)")]
    return [Result("tokenizer", OK, f"default version {tok.fingerprint[:12]}, vocab {tok.vocab_size:,} "
                                    f"({ctx.paths.tokenizer_dir(tok.fingerprint)})")]


@register
def check_mixtures(ctx: Context) -> list[Result]:
    """Every part of the mid/SFT mixtures the profile trains on, built as the phase's own preflight builds it:
    hub datasets and the word list for `hub` mixtures, the packaged generators for `packaged` ones; and RL's
    problems (GSM8K, or the packaged arithmetic generator that needs nothing)."""
    wanted = [p for p in ctx.phases if p in ("mid", "sft", "rl")]
    if not ctx.phases:
        return []
    if not wanted:
        return [Result("mid/SFT/RL data", SKIP, "not needed: no mid, sft or rl phase")]
    from nanochat_cli.train.preflight import build_checked_mixture

    out = []
    for phase in wanted:
        if phase == "rl":
            out += _rl_data(ctx.cfg)
            continue
        mixture = getattr(ctx.cfg, phase).mixture
        problems: list[tuple[str, str]] = []
        sizes = {}
        for split in ("train", "val"):
            built = build_checked_mixture(ctx.cfg, phase, split, problems)
            sizes[split] = len(built) if built is not None else 0
        label = f"{phase} data ({mixture})"
        if problems:
            out += [Result(label, FAIL, what, _command_of(fix, f"nanochat data fetch {phase}")) for what, fix in problems]
        else:
            where = "PyPI packages, nothing to fetch" if mixture == "packaged" else "loaded offline"
            out.append(Result(label, OK, f"{sizes['train']:,} train / {sizes['val']:,} val conversations ({where})"))
    return out


def _rl_data(cfg) -> list[Result]:
    from nanochat_cli.data.hub import load_split
    from nanochat_cli.train.rl import datasets_needed

    needed = datasets_needed(cfg)
    if not needed:
        return [Result("rl data (arithmetic)", OK, "the packaged arithmetic generator, nothing to fetch")]
    out = []
    for repo, name, split in needed:
        label = f"rl data {repo}/{name}:{split}"  # no [..]: rich markup
        try:
            ds = load_split(cfg, repo, name, split)
        except NanochatError as e:  # missing (preflight) or damaged (failure): both stop a job
            # GSM8K's train and test splits are mid's (train and validation)
            out.append(Result(label, FAIL, e.message, _command_of(e.fix, "nanochat data fetch mid")))
            continue
        out.append(Result(label, OK, f"{len(ds):,} rows, loaded offline"))
    return out


def _command_of(fix: str | None, default: str) -> str:
    """The command a fix names (the first `...` in it), so a row's fix reads like `data status`'s: a command."""
    if fix and "`" in fix:
        return fix.split("`")[1]
    return fix or default


@register
def check_evals(ctx: Context) -> list[Result]:
    """What the pipeline's evaluations read: the CORE bundle when the profile evaluates base with CORE, and
    every task of the chat suite it evaluates mid and SFT with."""
    if "eval" not in ctx.phases:
        return []
    from nanochat_cli.eval.chat_eval import check_chat_tasks
    from nanochat_cli.eval.core import load_bundle
    from nanochat_cli.eval.suite import base_eval_kind

    out = []
    if base_eval_kind(ctx.cfg) == "core":
        try:
            out.append(Result("CORE bundle", OK, f"{len(load_bundle(ctx.paths.eval_bundle))} tasks"))
        except NanochatError as e:
            out.append(Result("CORE bundle", FAIL, e.message, _command_of(e.fix, "nanochat data fetch eval")))
    else:
        out.append(Result("CORE bundle", SKIP, f"not needed: {ctx.cfg.profile} evaluates base by bits per byte "
                                                "(data.source = embedded); `nanochat data fetch eval` adds CORE"))
    try:
        suite, names = check_chat_tasks(ctx.cfg)
        out.append(Result(f"chat eval ({suite})", OK, f"{', '.join(names)} load offline"))
    except NanochatError as e:
        out.append(Result("chat eval", FAIL, e.message, _command_of(e.fix, "nanochat data fetch eval")))
    return out


@register
def check_previous_checkpoint(ctx: Context) -> list[Result]:
    """The checkpoint the first phase starts from, found the way training will find it (train/which_run.py)."""
    if not training_phases(ctx):
        return [Result("previous checkpoint", SKIP, "no training phase")] if ctx.phases else []
    first = training_phases(ctx)[0]
    if first == "base":
        return [Result("previous checkpoint", SKIP, "base starts from random weights")]
    from nanochat_cli.checkpoint_lookup import find_checkpoints
    from nanochat_cli.train.which_run import pick_run

    prev = PHASES[PHASES.index(first) - 1]
    fix = f"nanochat train {prev}" + (" (or render with --phases base,mid,sft)" if prev == "base" else "")
    try:
        choice = pick_run(ctx.paths, first, ctx.cfg.track.run or None, None, resume=False)
    except UsageError as e:
        return [Result(f"{prev} checkpoint", FAIL, e.message, e.fix)]
    if choice.init_run is None:
        article = "an" if prev == "sft" else "a"
        return [Result(f"{prev} checkpoint", FAIL, f"{first} starts from {article} {prev} model: {choice.init_problem}",
                       fix)]
    found = find_checkpoints(ctx.paths, prev, run=choice.init_run)[0]
    step = ck.latest_valid_step(found.directory)
    if step is None:
        return [Result(f"{prev} checkpoint", FAIL, f"no complete checkpoint in {found.directory} (a save was "
                                                   "interrupted or a file is damaged)", fix)]
    state = "finished" if found.finished else "unfinished"
    return [Result(f"{prev} checkpoint", OK, f"run {found.run} step {step} ({state}), verified")]


@register
def check_run_name(ctx: Context) -> list[Result]:
    run = ctx.cfg.track.run
    if not run:
        return [Result("run name", OK, "generated per run")]
    if run.lower() in PLACEHOLDER_NAMES:
        return [Result("run name", WARN, f"'{run}' looks like a placeholder: training gives the run a generated "
                                         "name instead", "pass a descriptive --run, e.g. d20-a100x8-v1")]
    try:
        runs.check_run_name(run)
    except UsageError as e:
        return [Result("run name", FAIL, e.message, e.fix)]
    holder = runs.current_writer(ctx.paths, run)
    if holder is not None:
        return [Result("run name", FAIL, f"run {run!r} is being written by {holder}",
                       "wait for that process (or stop it) before starting this job")]
    return [Result("run name", OK, run)]


# ---------------------------------------------------------------------------------------------------

@dataclass
class Report:
    phases: tuple[str, ...]
    results: list[Result]

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status == FAIL]

    def to_json(self) -> dict:
        return {"ok": not self.failed, "phases": list(self.phases), "checks": [asdict(r) for r in self.results]}


def run_doctor(cfg, phases: tuple[str, ...]) -> Report:
    """Run every registered check; a check that crashes is itself a FAIL row (the doctor never dies)."""
    ctx = Context(cfg=cfg, phases=phases, paths=Paths.of(cfg))
    results: list[Result] = []
    for check in CHECKS:
        try:
            results.extend(check(ctx))
        except Exception as e:  # noqa: BLE001 - one broken check must not hide the others
            results.append(Result(check.__name__.removeprefix("check_"), FAIL, f"check crashed: {e!r}",
                                  "report this as a bug (NANOCHAT_DEBUG=1 shows more)"))
    return Report(phases, results)


def preflight(cfg, phases: tuple[str, ...], *, fresh: bool = True) -> None:
    """What `train` and `resume` check in their own process before any worker starts (launch.py): the device
    needs alone first (a GPU profile without GPUs is refused in about a second), then the base data, the
    tokenizer of a fresh base, the mid/SFT datasets and the checkpoint a fresh phase starts from — every problem
    in one PreflightError line. A resumed phase's checkpoint and tokenizer are verified when it loads them."""
    run = cfg.track.run
    if run and not runs.is_placeholder(run):
        runs.check_run_name(run)  # bad input (exit 2) before any missing file (exit 3)
    ctx = Context(cfg=cfg, phases=phases, paths=Paths.of(cfg))
    raise_failed(check_gpus(ctx))
    checks: list[Check] = [check_shards, check_mixtures]
    if fresh and phases and phases[0] == "base":
        checks.insert(1, check_tokenizer)
    if fresh:
        checks.append(check_previous_checkpoint)
    raise_failed([r for check in checks for r in check(ctx)])


def raise_failed(rows: list[Result]) -> None:
    """PreflightError naming every FAIL row and their fixes (in order), or nothing."""
    failed = [r for r in rows if r.status == FAIL]
    if failed:
        fixes = list(dict.fromkeys(f"`{r.fix}`" if r.fix.startswith("nanochat ") else r.fix for r in failed if r.fix))
        raise PreflightError("; ".join(f"{r.check}: {r.detail}" for r in failed), ", then ".join(fixes) or None)
