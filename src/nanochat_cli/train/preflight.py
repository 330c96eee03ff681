"""Preflight for mid and SFT: before a model is built, check everything the phase will touch and report
every problem at once (PreflightError, exit 3), each with the command that fixes it.

1. The checkpoint it starts from (mid ← base, sft ← mid): the loop resolves it (train/which_run.py) and
   passes why there is none; a present one is verified (sha256 of every file) when it is loaded, and the
   phase trains with that checkpoint's own tokenizer, so the two cannot disagree.
2. Every dataset config/split of its train and val mixtures, loaded for real (no directory probing)
   and its first conversation built, so a wrong schema also fails here rather than at step 1000.
Cost: opening each dataset from the local Arrow cache (seconds); against that, a missing MMLU config costs
nothing but this message. It never downloads and never skips a phase: no partial mixture is ever trained.
"""

from __future__ import annotations

from nanochat_cli.errors import NanochatError, PreflightError
from nanochat_cli.train.phase_data import INIT_FROM


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


def preflight_phase(cfg, phase: str, init_problem: str | None = None):
    """(train mixture, val mixture) for mid/sft, or one PreflightError naming every problem found
    (`init_problem`: why there is no checkpoint to start from)."""
    problems: list[tuple[str, str]] = []
    if init_problem:
        pre = INIT_FROM[phase]
        problems.append((f"{phase} starts from a {pre} model: {init_problem}",
                         f"train it first: `nanochat train {pre}`"))
    train = build_checked_mixture(cfg, phase, "train", problems)
    val = build_checked_mixture(cfg, phase, "val", problems)
    if problems:
        fixes = list(dict.fromkeys(fix for _, fix in problems if fix))
        what = "; ".join(p for p, _ in problems)
        raise PreflightError(f"`nanochat train {phase}` cannot start: {what}", " then ".join(fixes) or None)
    return train, val
