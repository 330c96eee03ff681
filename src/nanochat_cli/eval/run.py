"""What `nanochat eval core|bpb|chat` does: load the checkpoint, run one evaluation, record the result.

Each result is appended to the checkpoint's run as a `phase: "eval"` line of metrics.jsonl and stored in
manifest.json under `evals["<kind>/<source>"]` (so `nanochat report` finds it without re-running). Rank 0
writes; every rank computes its shard. The CORE eval falls back to the packaged mini-suite only when the
profile's data source is the embedded corpus and the bundle is absent, and says so; on a fineweb profile
a missing bundle is an error naming `nanochat data fetch eval`. It does not compare runs.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable

from nanochat_cli.paths import Paths


def _setup(cfg, source: str, step: int | None):
    import torch

    from nanochat_cli.model.inference import load_for_inference
    from nanochat_cli.model.precision import resolve_device
    from nanochat_cli.train import dist

    info = dist.dist_info()
    device = torch.device(resolve_device(cfg))
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)  # one GPU per rank
    dist.init(cfg.dist.backend, device.type)
    loaded = load_for_inference(cfg, source, step, device=device)
    torch.set_num_threads(cfg.train.threads or max(1, min(8, (os.cpu_count() or 1) // max(1, info.local_world_size))))
    return loaded, device, info


def record(cfg, loaded, kind: str, result: dict, rank0: bool = True) -> None:
    """Append to the run's metrics.jsonl and manifest (the run of the checkpoint; a new one if unknown)."""
    if not rank0:
        return
    from nanochat_cli.train.manifest import Manifest

    paths = Paths.of(cfg)
    run_id = loaded.meta.get("run_id") or "eval"
    manifest = Manifest.create(paths, run_id, cfg, [])
    summary = {k: v for k, v in result.items() if k != "tasks"}
    summary.update(source=loaded.phase, step=loaded.step, checkpoint=str(loaded.path),
                   at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    summary["tasks"] = {name: {k: t[k] for k in ("accuracy", "centered") if k in t}
                        for name, t in (result.get("tasks") or {}).items()}
    manifest.data.setdefault("evals", {})[f"{kind}/{loaded.phase}"] = summary
    manifest.save()
    line = {"phase": "eval", "kind": kind, "source": loaded.phase, "step": loaded.step,
            **{k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}}
    for name, t in summary["tasks"].items():
        line[f"{name}/accuracy"] = t.get("accuracy")
    with open(manifest.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def run_core(cfg, source: str = "base", step: int | None = None, suite: str = "auto",
             progress: Callable[[str], None] = lambda m: None) -> dict:
    """suite: "core" (the DCLM bundle), "mini" (packaged mini-suite) or "auto" (core when the bundle
    exists or the profile fetches data, else mini)."""
    from nanochat_cli.eval.core import evaluate_bundle
    from nanochat_cli.eval.mini_suite import evaluate_mini_suite

    bundle = Paths.of(cfg).eval_bundle
    if suite == "auto":
        suite = "core" if (bundle / "core.yaml").is_file() or cfg.data.source != "embedded" else "mini"
    if suite == "core":
        from nanochat_cli.eval.core import load_bundle

        load_bundle(bundle)  # preflight before loading the model
    loaded, device, info = _setup(cfg, source, step)
    progress = progress if info.is_rank0 else (lambda m: None)
    if suite == "mini":
        progress("no CORE eval bundle on this profile: running the packaged mini-suite (NOT the CORE metric)")
        result = evaluate_mini_suite(loaded.model, loaded.tokenizer, cfg.eval.core_max_per_task, device, info.rank,
                                     info.world_size, progress)
        kind = "mini"
    else:
        result = evaluate_bundle(loaded.model, loaded.tokenizer, bundle, cfg.eval.core_max_per_task, device,
                                 info.rank, info.world_size, progress)
        result["suite"] = "core"
        kind = "core"
    result.update(source=source, step=loaded.step)
    record(cfg, loaded, kind, result, info.is_rank0)
    return result


def run_bpb(cfg, source: str = "base", step: int | None = None, progress=lambda m: None) -> dict:
    """Bits per byte of the checkpoint on the validation shard (eval.bpb_tokens tokens)."""
    from nanochat_cli.data.loader import TokenLoader
    from nanochat_cli.data.shards import list_shards
    from nanochat_cli.eval.bpb import evaluate_bpb, token_byte_lengths

    _, val_file = list_shards(cfg)
    loaded, device, info = _setup(cfg, source, step)
    progress = progress if info.is_rank0 else (lambda m: None)
    T = int(loaded.model.config.seq_len)
    B = max(1, min(cfg.train.device_batch_size, cfg.eval.bpb_tokens // T))
    steps = max(1, cfg.eval.bpb_tokens // (B * T * info.world_size))
    loader = TokenLoader([val_file], loaded.tokenizer, B, T, rank=info.rank, world_size=info.world_size)
    t0 = time.perf_counter()
    try:
        batches = (b for _, b in zip(range(steps), loader))
        bpb = evaluate_bpb(loaded.model, batches, token_byte_lengths(loaded.tokenizer), device)
    finally:
        close = getattr(loader, "close", None)
        if close:
            close()
    result = {"bpb": bpb, "tokens": steps * B * T * info.world_size, "val_file": str(val_file), "source": source,
              "step": loaded.step, "seconds": round(time.perf_counter() - t0, 3)}
    progress(f"{source} step {loaded.step}: {bpb:.4f} bits per byte over {result['tokens']:,} tokens")
    record(cfg, loaded, "bpb", result, info.is_rank0)
    return result


def run_chat_eval(cfg, source: str = "sft", step: int | None = None, task: str | None = None,
                  progress=lambda m: None) -> dict:
    from nanochat_cli.errors import UsageError
    from nanochat_cli.eval.chat_eval import HUB_TASKS, PACKAGED_TASKS, build_task, evaluate_chat

    if source not in ("mid", "sft"):
        raise UsageError(f"chat evals need a chat model, not {source!r}", "use -i mid or -i sft")
    phase_cfg = getattr(cfg, source, None)
    packaged = getattr(phase_cfg, "mixture", "packaged") != "hub"
    names = list(PACKAGED_TASKS if packaged else HUB_TASKS)
    if task is not None:
        if task not in HUB_TASKS + PACKAGED_TASKS:
            raise UsageError(f"unknown chat eval task {task!r}", f"use one of: {', '.join(names)}")
        names = [task]
    for name in names:  # preflight: every dataset loads before the model does
        build_task(cfg, name)
    loaded, device, info = _setup(cfg, source, step)
    progress = progress if info.is_rank0 else (lambda m: None)
    result = evaluate_chat(cfg, loaded.model, loaded.tokenizer, names, packaged, device, info.rank, info.world_size,
                           progress)
    result.update(source=source, step=loaded.step)
    record(cfg, loaded, "chat", result, info.is_rank0)
    return result
