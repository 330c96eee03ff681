"""`nanochat bench generate`: decoding speed with and without the KV cache, and time to first token.

Two model shapes, randomly initialised (speed does not depend on what the weights say): the cpu-tiny
profile's (d4, width 192, 3 heads, vocab 4096) and the d4 reference of `bench train` (width 256, 4 heads,
vocab 8192). Each generates 256 new tokens greedily after a 16-token prompt, once through the engine's
cache and once re-running the whole sequence per token; speedup = cached tok/s ÷ uncached tok/s. Stop
tokens are ignored so every run makes exactly 256 tokens. fp32 on CPU. It measures; it asserts nothing.
"""

from __future__ import annotations

import os
import time
from typing import Callable

SHAPES = {
    "cpu-tiny": {"n_layer": 4, "n_embd": 192, "n_head": 3, "vocab_size": 4096, "seq_len": 256},
    "d4-reference": {"n_layer": 4, "n_embd": 256, "n_head": 4, "vocab_size": 8192, "seq_len": 256},
}
PROMPT_TOKENS = 16


def _engine(shape: dict, device):
    import torch

    from nanochat_cli.model.engine import Engine
    from nanochat_cli.model.gpt import GPT, GPTConfig
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=shape["vocab_size"], n_layer=shape["n_layer"], n_embd=shape["n_embd"],
                    n_head=shape["n_head"], n_kv_head=shape["n_head"], seq_len=shape["seq_len"])
    with torch.device(device):
        model = GPT(cfg)
    model.init_weights()
    return Engine(model.eval(), ByteTokenizer())


def _run(engine, prompt: list[int], new_tokens: int, use_cache: bool) -> tuple[float, float]:
    """(seconds to the first token, seconds for all tokens)."""
    t0 = time.perf_counter()
    first = None
    n = 0
    for _ in engine.generate(prompt, 1, max_tokens=new_tokens, temperature=0.0, use_cache=use_cache, stop=False):
        n += 1
        if first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    assert n == new_tokens, (n, new_tokens)
    return first, total


def bench_generate(new_tokens: int = 256, threads: int | None = None, repeats: int = 2,
                   progress: Callable[[str], None] = lambda m: None) -> dict:
    import torch

    threads = threads or min(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    prompt = [(7 * i + 3) % 250 for i in range(PROMPT_TOKENS)]
    out: dict = {"new_tokens": new_tokens, "prompt_tokens": PROMPT_TOKENS, "threads": threads,
                 "device": "cpu", "dtype": "float32", "models": {}}
    for name, shape in SHAPES.items():
        engine = _engine(shape, device)
        _run(engine, prompt, 8, True)  # warm-up: allocator, kernels
        cached = min((_run(engine, prompt, new_tokens, True) for _ in range(repeats)), key=lambda r: r[1])
        uncached = _run(engine, prompt, new_tokens, False)
        res = {"cached_tok_s": round(new_tokens / cached[1], 1), "uncached_tok_s": round(new_tokens / uncached[1], 1),
               "ttft_ms": round(cached[0] * 1000, 2), "uncached_ttft_ms": round(uncached[0] * 1000, 2),
               "params": sum(p.numel() for p in engine.model.parameters()), **shape}
        res["speedup"] = round(res["cached_tok_s"] / res["uncached_tok_s"], 2)
        out["models"][name] = res
        progress(f"{name}: cached {res['cached_tok_s']} tok/s, uncached {res['uncached_tok_s']} tok/s, "
                 f"speedup {res['speedup']}x, first token {res['ttft_ms']} ms")
    tiny = out["models"]["cpu-tiny"]
    out["speedup"] = tiny["speedup"]
    out["ttft_ms"] = tiny["ttft_ms"]
    out["targets"] = {"speedup_min": 5.0, "ttft_ms_max": 200.0,
                      "met": tiny["speedup"] >= 5.0 and tiny["ttft_ms"] < 200.0}
    return out
