"""The DCLM CORE metric as nanochat computes it, from the eval bundle under <home>/eval_bundle.

22 tasks listed in core.yaml, rows in eval_data/*.jsonl, random baselines (percent) in eval_meta_data.csv.
Each task's rows are shuffled with Random(1337) and cut to eval.core_max_per_task; row i gets K few-shot
rows drawn with Random(1234 + i) from the others. Multiple choice and schema pick the option with the
lowest mean cross-entropy over the continuation tokens; language modelling is right only if greedy
argmax reproduces every continuation token. centered = (acc − b)/(1 − b); CORE = mean of the centered
values. All options of one row go through the model as one padded batch (one forward per row: the 22
tasks at 500 rows cost ~11K forwards). Rows are sharded over ranks and summed with all_reduce.
It does not download the bundle (`nanochat data fetch eval` does) and does not cache tokenizations.
"""

from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path
from typing import Callable

from nanochat_cli.errors import NanochatError, PreflightError

TYPES = ("multiple_choice", "schema", "language_modeling")


# ----- the bundle --------------------------------------------------------------------------------------

def load_bundle(bundle: Path) -> tuple[list[dict], dict[str, float]]:
    """(task list from core.yaml, label -> random baseline in percent)."""
    import yaml

    bundle = Path(bundle)
    spec, meta = bundle / "core.yaml", bundle / "eval_meta_data.csv"
    if not spec.is_file() or not meta.is_file():
        raise PreflightError(f"the CORE eval bundle is missing in {bundle}", "run `nanochat data fetch eval`")
    try:
        tasks = yaml.safe_load(spec.read_text(encoding="utf-8"))["icl_tasks"]
    except Exception as e:  # malformed yaml or no icl_tasks
        raise NanochatError(f"{spec} is not a CORE task list ({e})", "re-fetch it: `nanochat data fetch eval`") from None
    baselines = {}
    with open(meta, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            baselines[row["Eval Task"]] = float(row["Random baseline"])
    return tasks, baselines


def load_rows(bundle: Path, task: dict) -> list[dict]:
    path = Path(bundle) / "eval_data" / task["dataset_uri"]
    if not path.is_file():
        raise PreflightError(f"CORE task {task['label']}: {path} is missing", "run `nanochat data fetch eval`")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ----- prompts: (token lists per option, continuation start/end per option) ------------------------------

def _mc_prompts(row, shots, delim):
    fs = "".join(f"{s['query']}{delim}{s['choices'][s['gold']]}\n\n" for s in shots)
    return [f"{fs}{row['query']}{delim}{c}" for c in row["choices"]]


def _schema_prompts(row, shots, delim):
    fs = "".join(f"{s['context_options'][s['gold']]}{delim}{s['continuation']}\n\n" for s in shots)
    return [f"{fs}{opt}{delim}{row['continuation']}" for opt in row["context_options"]]


def _lm_prompts(row, shots, delim):
    fs = "".join(f"{s['context'].strip()}{delim}{s['continuation']}\n\n" for s in shots)
    without = f"{fs}{row['context'].strip()}{delim}"
    return [without.strip(), without + row["continuation"]]


def _common_prefix(seqs):
    n = min(map(len, seqs))
    i = 0
    while i < n and all(s[i] == seqs[0][i] for s in seqs):
        i += 1
    return i


def _common_suffix(seqs):
    return _common_prefix([s[::-1] for s in seqs])


def row_tokens(tokenizer, kind, row, shots, delim) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Token lists to run, and for each the [start, end) span whose predictions are scored."""
    bos = tokenizer.bos_id
    if kind == "multiple_choice":
        toks = tokenizer.encode_batch(_mc_prompts(row, shots, delim), prepend=bos)
        start = _common_prefix(toks)
        return toks, [(start, len(t)) for t in toks]
    if kind == "schema":
        toks = tokenizer.encode_batch(_schema_prompts(row, shots, delim), prepend=bos)
        suffix = _common_suffix(toks)
        return toks, [(len(t) - suffix, len(t)) for t in toks]
    if kind == "language_modeling":
        without, with_ = tokenizer.encode_batch(_lm_prompts(row, shots, delim), prepend=bos)
        return [with_], [(len(without), len(with_))]
    raise NanochatError(f"unknown CORE task type {kind!r}", "the bundle's core.yaml is not one this version reads")


def _crop(toks, spans, max_len):
    """Keep the last max_len tokens of each sequence (the continuation is at the end)."""
    out_t, out_s = [], []
    for t, (s, e) in zip(toks, spans):
        cut = max(0, len(t) - max_len)
        out_t.append(t[cut:])
        out_s.append((max(1, s - cut), e - cut))
    return out_t, out_s


def score_row(model, tokenizer, kind, row, shots, delim, device, max_len) -> bool:
    import torch
    import torch.nn.functional as F

    toks, spans = row_tokens(tokenizer, kind, row, shots, delim)
    toks, spans = _crop(toks, spans, max_len)
    T = max(map(len, toks))
    x = torch.full((len(toks), T), tokenizer.bos_id, dtype=torch.long)
    for i, t in enumerate(toks):
        x[i, :len(t)] = torch.tensor(t)
    x = x.to(device)
    logits = model(x)  # (N, T, V) fp32
    V = logits.size(-1)
    # position p predicts token p+1
    losses = F.cross_entropy(logits[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1), reduction="none").view(len(toks), T - 1)
    if kind == "language_modeling":
        s, e = spans[0]
        pred = logits[0, s - 1:e - 1].argmax(-1)
        return bool(torch.equal(pred, x[0, s:e]))
    means = [losses[i, s - 1:e - 1].mean().item() for i, (s, e) in enumerate(spans)]
    return min(range(len(means)), key=means.__getitem__) == row["gold"]


# ----- one task, all tasks ---------------------------------------------------------------------------------

def evaluate_task(model, tokenizer, rows, kind, num_fewshot, delim, device, max_len, rank=0, world_size=1):
    """Accuracy over `rows` (already shuffled and cut), rows split over ranks and summed."""
    import torch

    correct = torch.zeros(len(rows), dtype=torch.float32, device=device)
    done = torch.zeros(len(rows), dtype=torch.float32, device=device)
    for i in range(rank, len(rows), world_size):
        shots = []
        if num_fewshot > 0:
            pool = [j for j in range(len(rows)) if j != i]
            shots = [rows[j] for j in random.Random(1234 + i).sample(pool, num_fewshot)]
        correct[i] = float(score_row(model, tokenizer, kind, rows[i], shots, delim, device, max_len))
        done[i] = 1.0
    import torch.distributed as tdist

    if world_size > 1 and tdist.is_available() and tdist.is_initialized():
        tdist.all_reduce(correct)
        tdist.all_reduce(done)
    return correct.sum().item() / max(1.0, done.sum().item())


def centered(acc: float, baseline_percent: float) -> float:
    b = baseline_percent / 100.0
    return (acc - b) / (1.0 - b)


def evaluate_bundle(model, tokenizer, bundle: Path, max_per_task: int = -1, device="cpu", rank: int = 0,
                    world_size: int = 1, progress: Callable[[str], None] = lambda m: None) -> dict:
    """Per-task accuracy and centered score, and their mean (key `core`)."""
    import torch

    tasks, baselines = load_bundle(bundle)
    max_len = int(model.config.seq_len)
    out, t0 = {}, time.perf_counter()
    with torch.no_grad():
        for task in tasks:
            label, kind = task["label"], task["icl_task_type"]
            k = int(task["num_fewshot"][0] if isinstance(task["num_fewshot"], list) else task["num_fewshot"])
            delim = task.get("continuation_delimiter", " ")
            rows = load_rows(bundle, task)
            random.Random(1337).shuffle(rows)
            if max_per_task > 0:
                rows = rows[:max_per_task]
            if k >= len(rows):
                raise NanochatError(f"CORE task {label} has {len(rows)} rows, fewer than its {k} few-shot examples "
                                    "plus one", "raise eval.core_max_per_task or check the bundle")
            if label not in baselines:
                raise NanochatError(f"CORE task {label} has no random baseline in eval_meta_data.csv",
                                    "re-fetch the bundle: `nanochat data fetch eval`")
            ts = time.perf_counter()
            acc = evaluate_task(model, tokenizer, rows, kind, k, delim, device, max_len, rank, world_size)
            out[label] = {"type": kind, "fewshot": k, "rows": len(rows), "accuracy": acc,
                          "baseline": baselines[label], "centered": centered(acc, baselines[label]),
                          "seconds": round(time.perf_counter() - ts, 3)}
            progress(f"{label}: accuracy {acc:.4f}, centered {out[label]['centered']:.4f} ({len(rows)} rows)")
    core = sum(t["centered"] for t in out.values()) / max(1, len(out))
    return {"tasks": out, "core": core, "seconds": round(time.perf_counter() - t0, 3)}
