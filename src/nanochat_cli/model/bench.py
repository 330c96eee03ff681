"""`nanochat bench train`: time the full training step (forward + loss, backward, optimizer, zero_grad).

With no options it measures the reference config that docs/explanation/cpu-training-speed.md and nanochat's own bench use: depth
4, width 256, 4 heads of 64, full causal attention, seq 256, vocab 8192, device batch 8 (2,048 tokens
per step), 2 threads, random token batches made before timing. Warm-up steps (which include the
torch.compile, ~45 s+ cold on 2 cores) run outside the timed region. It measures; it asserts nothing.
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch

from nanochat_cli.hardware import peak_flops

@dataclass
class BenchSpec:
    depth: int = 4
    aspect_ratio: int = 64
    head_dim: int = 64
    seq_len: int = 256
    vocab_size: int = 8192
    batch: int = 8
    threads: int = 2
    steps: int = 10
    warmup: int = 3


def bench_flags(spec: BenchSpec) -> dict:
    """The config keys that make `spec` (dtype/compile/device come from the caller's flags)."""
    return {"model.depth": spec.depth, "model.aspect_ratio": spec.aspect_ratio, "model.head_dim": spec.head_dim,
            "model.seq_len": spec.seq_len, "tokenizer.vocab_size": spec.vocab_size,
            "train.device_batch_size": spec.batch, "train.total_batch_size": spec.batch * spec.seq_len,
            "train.threads": spec.threads, "dist.nproc": 1, "dist.nnodes": 1}


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20  # macOS reports bytes


def bench_train(cfg, spec: BenchSpec, progress: Callable[[str], None] = lambda m: None) -> dict:
    """Build the model and optimizers the training loop builds, run warm-up then timed steps; return
    the figures as a JSON-ready dict (tok_per_s from the mean step, as nanochat's bench reports it)."""
    from nanochat_cli.model.compiled import prepare_for_training
    from nanochat_cli.model.gpt import GPT, GPTConfig
    from nanochat_cli.model.optim import build_optimizers
    from nanochat_cli.model.precision import resolve_device, resolve_dtype

    torch.set_num_threads(spec.threads)
    torch.manual_seed(cfg.train.seed)
    device = resolve_device(cfg)
    dtype, dtype_reason = resolve_dtype(cfg, device)
    model = GPT(GPTConfig.from_config(cfg, spec.vocab_size)).to(device)
    model.init_weights()
    model = prepare_for_training(model, cfg, device, dtype)
    optimizers = build_optimizers(model, cfg)
    setup = model.training_setup

    gen = torch.Generator().manual_seed(1337)
    n = spec.warmup + spec.steps
    data = torch.randint(0, spec.vocab_size, (n, spec.batch, spec.seq_len + 1), generator=gen)
    batches = [(d[:, :-1].contiguous().to(device), d[:, 1:].contiguous().to(device)) for d in data]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step(x, y):
        t0 = time.perf_counter()
        loss = model(x, y)
        sync()
        t1 = time.perf_counter()
        loss.backward()
        sync()
        t2 = time.perf_counter()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        value = loss.item()  # a sync point on GPU, as in a real loop's logging
        t3 = time.perf_counter()
        return (t1 - t0, t2 - t1, t3 - t2), value

    if setup["compiled"]:
        progress("compiling the model and optimizer kernels (first steps take ~1 min on 2 cores; "
                 "--compile off skips it)...")
    t0 = time.perf_counter()
    for x, y in batches[:spec.warmup]:
        step(x, y)
    warmup_s = time.perf_counter() - t0
    progress(f"warm-up done in {warmup_s:.1f}s; timing {spec.steps} steps...")

    splits, loss = [], math.nan
    for x, y in batches[spec.warmup:]:
        split, loss = step(x, y)
        splits.append(split)
    totals = [sum(s) for s in splits]
    tokens = spec.batch * spec.seq_len
    mean_s, median_s = statistics.mean(totals), statistics.median(totals)
    fwd, bwd, opt = (statistics.median(s[i] for s in splits) for i in range(3))
    flops_per_token = model.estimate_flops()
    peak = peak_flops(device)
    return {
        "config": {"depth": spec.depth, "n_embd": model.config.n_embd, "n_head": model.config.n_head,
                   "head_dim": model.config.head_dim, "seq_len": spec.seq_len, "vocab_size": spec.vocab_size,
                   "device_batch": spec.batch, "tokens_per_step": tokens, "threads": torch.get_num_threads(),
                   "steps": spec.steps, "warmup": spec.warmup, "n_params": model.param_counts()["total"],
                   "torch": torch.__version__},
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "dtype": setup["dtype"], "dtype_reason": dtype_reason,
        "compiled": setup["compiled"], "compile_reason": setup["compile_reason"],
        "attention": setup["attention"], "loss_head": setup["loss_head"],
        "tok_per_s": round(tokens / mean_s, 1),
        "tok_per_s_median": round(tokens / median_s, 1),
        "step_ms": round(1000 * mean_s, 2),
        "step_ms_median": round(1000 * median_s, 2),
        "fwd_ms": round(1000 * fwd, 2), "bwd_ms": round(1000 * bwd, 2), "optim_ms": round(1000 * opt, 2),
        "optim_frac": round(opt / median_s, 3),
        "flops_per_token": flops_per_token,
        "tflops": round(flops_per_token * tokens / mean_s / 1e12, 4),
        "mfu": round(flops_per_token * tokens / mean_s / peak, 4) if peak else None,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "warmup_s": round(warmup_s, 2),
        "last_loss": round(loss, 4),
    }
