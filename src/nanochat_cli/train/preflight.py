"""Preflight for mid and SFT: before a model is built, check everything the phase will touch and report
every problem at once (PreflightError, exit 3), each with the command that fixes it.

1. The checkpoint it starts from (mid ← base, sft ← mid): present, complete, every file's sha256
   matching meta.json, and trained with this tokenizer (same kind, vocab size and fingerprint).
2. Every dataset config/split of its train and val mixtures, loaded for real (no directory probing)
   and its first conversation built, so a wrong schema also fails here rather than at step 1000.
Cost: hashing the prerequisite checkpoint (~1 s/GB) plus opening each dataset from the local Arrow
cache (seconds); against that, a missing MMLU config costs nothing but this message. It never
downloads and never skips a phase: no partial mixture is ever trained.
"""

from __future__ import annotations

import json
from pathlib import Path

from nanochat_cli.errors import NanochatError, PreflightError
from nanochat_cli.paths import Paths
from nanochat_cli.train import checkpoint as ck
from nanochat_cli.train.phases import INIT_FROM


def check_init_checkpoint(cfg, phase: str, tokenizer) -> Path | None:
    """The verified checkpoint directory `phase` starts from (None for base), or PreflightError."""
    pre = INIT_FROM[phase]
    if pre is None:
        return None
    directory = Paths.of(cfg).checkpoint_dir(pre, cfg.model.depth)
    fix = f"train it first: `nanochat train {pre}`" + (" (or `nanochat resume --from base`)" if pre == "mid" else "")
    steps = ck.list_steps(directory)
    if not steps:
        raise PreflightError(f"{phase} starts from the {pre} checkpoint, and there is none in {directory}", fix)
    step = ck.latest_valid_step(directory)
    if step is None:
        reasons = "; ".join(f"step {s}: {ck.verify_checkpoint(directory / ck.step_dir_name(s))}" for s in steps)
        raise PreflightError(f"{phase} starts from the {pre} checkpoint, but none in {directory} is complete and "
                             f"intact ({reasons})", f"train it again: `nanochat train {pre}`")
    path = directory / ck.step_dir_name(step)
    meta = json.loads((path / ck.META_FILE).read_text(encoding="utf-8"))
    saved = meta.get("tokenizer") or {}
    mine = {"kind": cfg.tokenizer.kind, "vocab_size": tokenizer.vocab_size,
            "fingerprint": getattr(tokenizer, "fingerprint", None)}
    for key in ("kind", "vocab_size", "fingerprint"):
        if key in saved and saved[key] != mine[key]:
            raise PreflightError(f"the {pre} checkpoint {path} was trained with a different tokenizer "
                                 f"({key} {saved[key]!r}, now {mine[key]!r})",
                                 f"restore that tokenizer, or retrain: `nanochat train {pre}`")
    return path


def _fix_of(err: Exception, phase: str) -> str:
    from nanochat_cli.tasks.mixtures import FETCH

    if isinstance(err, NanochatError) and err.fix:
        return err.fix
    return f"`{FETCH[phase]}`"


def build_checked_mixture(cfg, phase: str, split: str, problems: list[tuple[str, str]]):
    """Load every part of the mixture; failures are appended to `problems` as (what, fix)."""
    from nanochat_cli.tasks.mixtures import mixture_parts
    from nanochat_cli.tasks.task import TaskMixture

    tasks, weights = [], []
    for part in mixture_parts(cfg, phase, split):
        try:
            task = part.build()
            if len(task) == 0:
                raise PreflightError(f"{part.label} is empty")
            task[0]  # builds one conversation: a wrong schema fails here  # noqa: B018
        except (NanochatError, ValueError, KeyError, TypeError, OSError) as e:
            # datasets raises ValueError ("Unknown split"), FileNotFoundError, DatasetNotFoundError (a
            # FileNotFoundError); a row of the wrong shape raises KeyError/TypeError in its converter.
            message = e.message if isinstance(e, NanochatError) else f"{e.__class__.__name__}: {e}"
            problems.append((f"{part.label}: {' '.join(str(message).split())[:300]}", _fix_of(e, phase)))
            continue
        tasks.append(task)
        weights.append(part.weight)
    return TaskMixture(tasks, weights, seed=cfg.train.seed) if tasks else None


def preflight_phase(cfg, phase: str, tokenizer):
    """(init checkpoint path, train mixture, val mixture) for mid/sft, or one PreflightError naming
    every problem found."""
    problems: list[tuple[str, str]] = []
    init = None
    try:
        init = check_init_checkpoint(cfg, phase, tokenizer)
    except PreflightError as e:
        problems.append((e.message, e.fix or ""))
    train = build_checked_mixture(cfg, phase, "train", problems)
    val = build_checked_mixture(cfg, phase, "val", problems)
    if problems:
        fixes = list(dict.fromkeys(fix for _, fix in problems if fix))
        what = "; ".join(p for p, _ in problems)
        raise PreflightError(f"`nanochat train {phase}` cannot start: {what}", " then ".join(fixes) or None)
    return init, train, val
