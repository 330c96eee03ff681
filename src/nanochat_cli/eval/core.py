"""The DCLM CORE metric as nanochat computes it: 22 in-context-learning tasks from the eval bundle
(`core.yaml`, `eval_data/*.jsonl`, `eval_meta_data.csv`), each scored as centered accuracy
(acc − baseline)/(1 − baseline), CORE = their mean. GPT-2 (124M) scores 0.1139.

Three kinds of scoring: multiple choice (same context, different continuations: the option with the
lowest mean cross-entropy after the common token prefix wins), schema (different contexts, same
continuation: lowest mean loss over the common token suffix) and language modelling (correct only if
greedy argmax reproduces every continuation token). The choices of one example go through the model
as one right-padded batch (one forward per example; ~3 s for 22 × 100 rows of a d4 CPU model).
Rows are shuffled with Random(1337), few-shot rows drawn with Random(1234 + i): the same prompts as
nanochat. Examples are strided over DDP ranks and the correct counts summed with one all_reduce per task.
It does not fetch the bundle (`nanochat data fetch eval` does) and never generates free text.
"""

from __future__ import annotations

import csv
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nanochat_cli.errors import PreflightError
from nanochat_cli.paths import Paths

SHUFFLE_SEED = 1337
FEWSHOT_SEED = 1234
FETCH = "nanochat data fetch eval"


@dataclass
class TaskSpec:
    label: str
    uri: str
    task_type: str  # multiple_choice | schema | language_modeling
    num_fewshot: int
    delimiter: str
    baseline: float  # fraction (the CSV holds percent)


# ---------------------------------------------------------------------------------------------------
# The bundle

def load_bundle(bundle: Path) -> list[TaskSpec]:
    """The tasks core.yaml lists, with their random baselines; PreflightError naming the fetch command
    when anything is missing."""
    import yaml

    from nanochat_cli.data.assets import check_eval_bundle

    try:
        check_eval_bundle(bundle)
    except ValueError as e:
        raise PreflightError(f"the CORE eval bundle is not usable: {e}", f"run `{FETCH}` (needs network once)") from None
    tasks = yaml.safe_load((bundle / "core.yaml").read_text(encoding="utf-8"))["icl_tasks"]
    baselines: dict[str, float] = {}
    with open(bundle / "eval_meta_data.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            baselines[row["Eval Task"]] = float(row["Random baseline"])
    specs = []
    for t in tasks:
        label = t["label"]
        if label not in baselines:
            raise PreflightError(f"eval_meta_data.csv has no random baseline for task {label!r}",
                                 f"re-fetch the bundle: delete {bundle} and run `{FETCH}`")
        shots = t.get("num_fewshot", [0])
        shots = shots[0] if isinstance(shots, list) else shots
        specs.append(TaskSpec(label, t["dataset_uri"], t["icl_task_type"], int(shots),
                              t.get("continuation_delimiter", " "), baselines[label] / 100.0))
    return specs


def load_rows(bundle: Path, spec: TaskSpec, max_rows: int = -1) -> list[dict[str, Any]]:
    """The task's rows in nanochat's order (Random(1337).shuffle), cut to max_rows when ≥ 0."""
    path = bundle / "eval_data" / spec.uri
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(SHUFFLE_SEED).shuffle(rows)
    return rows[:max_rows] if max_rows >= 0 else rows


# ---------------------------------------------------------------------------------------------------
# Prompts: one string per option, plus which end of the token sequences is the scored continuation

def fewshot_rows(rows: list[dict], index: int, k: int) -> list[dict]:
    if k <= 0:
        return []
    others = [j for j in range(len(rows)) if j != index]
    return [rows[j] for j in random.Random(FEWSHOT_SEED + index).sample(others, k)]


def render_prompts(spec: TaskSpec, row: dict, shots: list[dict]) -> list[str]:
    d = spec.delimiter
    if spec.task_type == "multiple_choice":
        prefix = "".join(f"{s['query']}{d}{s['choices'][s['gold']]}\n\n" for s in shots)
        return [f"{prefix}{row['query']}{d}{c}" for c in row["choices"]]
    if spec.task_type == "schema":
        prefix = "".join(f"{s['context_options'][s['gold']]}{d}{s['continuation']}\n\n" for s in shots)
        return [f"{prefix}{c}{d}{row['continuation']}" for c in row["context_options"]]
    if spec.task_type == "language_modeling":
        prefix = "".join(f"{s['context'].strip()}{d}{s['continuation']}\n\n" for s in shots)
        # Without the continuation, trailing whitespace of the delimiter is stripped so that a BPE
        # tokenizer keeps " word" as one token in the version with the continuation.
        without = f"{prefix}{row['context'].strip()}{d}".strip()
        return [without, f"{prefix}{row['context'].strip()}{d}{row['continuation']}"]
    raise ValueError(f"unknown CORE task type {spec.task_type!r}")


def _common_prefix(seqs: list[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != seqs[0][i] for s in seqs):
            return i
    return n


def _common_suffix(seqs: list[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    for i in range(1, n + 1):
        if any(s[-i] != seqs[0][-i] for s in seqs):
            return i - 1
    return n


def tokenize_example(spec: TaskSpec, prompts: list[str], tokenizer) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Token ids (BOS first) per option and the [start, end) span of the scored continuation in each."""
    bos = tokenizer.bos_id
    ids = [tokenizer.encode(p, prepend=bos) for p in prompts]
    if spec.task_type == "multiple_choice":
        start = _common_prefix(ids)
        return ids, [(start, len(s)) for s in ids]
    if spec.task_type == "schema":
        n = _common_suffix(ids)
        return ids, [(len(s) - n, len(s)) for s in ids]
    without, with_ = ids
    return [with_], [(len(without), len(with_))]


# ---------------------------------------------------------------------------------------------------
# Scoring

def score_example(model, spec: TaskSpec, ids: list[list[int]], spans: list[tuple[int, int]], gold: int | None,
                  device, max_len: int | None) -> bool:
    """One forward over the example's options (right-padded); True when the model gets it right."""
    import torch
    import torch.nn.functional as F

    if max_len is not None:  # keep the end (the continuation) when a prompt is longer than the context
        cut = [max(0, len(s) - max_len) for s in ids]
        ids = [s[c:] for s, c in zip(ids, cut)]
        spans = [(max(1, a - c), b - c) for (a, b), c in zip(spans, cut)]
    T = max(len(s) for s in ids)
    batch = torch.zeros((len(ids), T), dtype=torch.long)
    for i, s in enumerate(ids):
        batch[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    batch = batch.to(device)
    with torch.no_grad():
        logits = model(batch).float()  # (B, T, V)
    if spec.task_type == "language_modeling":
        (a, b), = spans
        if b <= a:
            return False
        pred = logits[0, a - 1:b - 1].argmax(dim=-1)
        return bool(torch.equal(pred, batch[0, a:b]))
    losses = []
    for i, (a, b) in enumerate(spans):
        if b <= a:
            losses.append(float("inf"))
            continue
        ce = F.cross_entropy(logits[i, a - 1:b - 1], batch[i, a:b], reduction="mean")
        losses.append(ce.item())
    return min(range(len(losses)), key=losses.__getitem__) == gold


def evaluate_task(model, tokenizer, spec: TaskSpec, rows: list[dict], device, rank: int = 0,
                  world_size: int = 1) -> float:
    """Accuracy of one task; examples strided over ranks, counts all-reduced when a group is up."""
    import torch
    import torch.distributed as tdist

    max_len = getattr(getattr(model, "config", None), "seq_len", None)
    correct = torch.zeros(2, dtype=torch.float64, device=device)  # (right, seen)
    for i in range(rank, len(rows), world_size):
        row = rows[i]
        prompts = render_prompts(spec, row, fewshot_rows(rows, i, spec.num_fewshot))
        ids, spans = tokenize_example(spec, prompts, tokenizer)
        ok = score_example(model, spec, ids, spans, row.get("gold"), device, max_len)
        correct[0] += float(ok)
        correct[1] += 1
    if world_size > 1 and tdist.is_available() and tdist.is_initialized():
        tdist.all_reduce(correct)
    return (correct[0] / correct[1].clamp(min=1)).item()


def centered(accuracy: float, baseline: float) -> float:
    return (accuracy - baseline) / (1.0 - baseline)


def evaluate_core(model, tokenizer, bundle: Path, device, max_per_task: int = -1, rank: int = 0,
                  world_size: int = 1, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every task of the bundle: {"tasks": {label: {accuracy, centered, baseline, rows, type, shots}},
    "core": mean centered, "seconds": wall time}."""
    for_tasks = load_bundle(bundle)
    was_training = model.training
    model.eval()
    t0 = time.time()
    out: dict[str, Any] = {}
    try:
        for spec in for_tasks:
            t = time.time()
            rows = load_rows(bundle, spec, max_per_task)
            if len(rows) <= spec.num_fewshot:
                raise PreflightError(f"CORE task {spec.label} has {len(rows)} rows, needs more than its "
                                     f"{spec.num_fewshot} few-shot examples", "raise eval.core_max_per_task")
            acc = evaluate_task(model, tokenizer, spec, rows, device, rank, world_size)
            out[spec.label] = {"accuracy": acc, "centered": centered(acc, spec.baseline), "baseline": spec.baseline,
                               "rows": len(rows), "type": spec.task_type, "shots": spec.num_fewshot}
            if progress:
                progress(f"{spec.label:<34} acc {acc:.4f}  centered {out[spec.label]['centered']:+.4f}  "
                         f"({len(rows)} rows, {time.time() - t:.1f} s)")
    finally:
        model.train(was_training)
    core = sum(r["centered"] for r in out.values()) / max(1, len(out))
    return {"metric": "CORE", "tasks": out, "core": core, "max_per_task": max_per_task,
            "seconds": time.time() - t0}


def run_core(cfg, source: str = "base", step: int | None = None,
             progress: Callable[[str], None] | None = None, run: str | None = None,
             depth: int | None = None) -> dict[str, Any]:
    """`nanochat eval core`: CORE of the latest (or `step`) checkpoint of `source`."""
    from nanochat_cli.eval.runner import run_on_checkpoint

    bundle = Paths.of(cfg).eval_bundle
    load_bundle(bundle)  # preflight before loading any weights

    def work(loaded, device, info):
        return evaluate_core(loaded.model, loaded.tokenizer, bundle, device, cfg.eval.core_max_per_task,
                             info.rank, info.world_size, progress if info.is_rank0 else None)

    def metrics(result):
        return {"core": result["core"], **{f"core/{k}": v["centered"] for k, v in result["tasks"].items()}}

    return run_on_checkpoint(cfg, source, "core", work, metrics, step=step, run=run, depth=depth, progress=progress)
