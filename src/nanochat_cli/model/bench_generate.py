"""`nanochat bench generate`: generation speed with and without the KV cache, and time to first token.

Randomly initialised models of the cpu-tiny and d4-reference shapes (speed does not depend on the
weights). Without a cache every new token re-runs the whole prefix, so the gap grows with length;
at 256 new tokens the cache should be ≥5× faster (issue 7's target).
"""

from __future__ import annotations

import time

SHAPES = {
    # name: (depth, width, heads, vocab, seq_len)
    "cpu-tiny": (4, 256, 4, 4096, 512),
    "d4-reference": (4, 256, 4, 8192, 512),
}


def _measure(model, tokenizer_vocab: int, prompt_len: int, new_tokens: int, use_cache: bool) -> dict:
    import torch

    from nanochat_cli.model.engine import Engine, GenerationConfig

    class _Tok:  # the engine only needs special ids (none: no stop, no tools) for a speed measurement
        def special_id(self, name):
            raise KeyError(name)

    engine = Engine(model, _Tok())
    prompt = torch.randint(0, tokenizer_vocab, (prompt_len,), generator=torch.Generator().manual_seed(0)).tolist()
    gen = GenerationConfig(max_tokens=new_tokens, temperature=0.0, top_k=0)
    t0 = time.perf_counter()
    first = None
    n = 0
    for _ in engine.generate(prompt, 1, gen, use_cache=use_cache):
        if first is None:
            first = time.perf_counter() - t0
        n += 1
    total = time.perf_counter() - t0
    return {"tokens": n, "seconds": round(total, 4), "tok_per_s": round(n / total, 1),
            "first_token_ms": round(first * 1000, 1)}


def run_bench(new_tokens: int = 256, prompt_len: int = 16, threads: int | None = None) -> dict:
    import torch

    from nanochat_cli.model.gpt import GPT, GPTConfig

    from nanochat_cli.hardware import usable_cpus

    threads = threads or usable_cpus()
    torch.set_num_threads(threads)
    out = {"new_tokens": new_tokens, "prompt_tokens": prompt_len, "threads": threads, "models": {}}
    for name, (depth, width, heads, vocab, seq) in SHAPES.items():
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=vocab, n_layer=depth, n_embd=width, n_head=heads, n_kv_head=heads,
                              seq_len=seq))
        model.init_weights()
        # init zeroes lm_head and output projections; random weights give realistic compute, not zeros
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2 and p.abs().sum() == 0:
                    p.normal_(0, 0.02)
        model.eval()
        _measure(model, vocab, prompt_len, 8, True)  # warm-up (allocator, kernels)
        cached = _measure(model, vocab, prompt_len, new_tokens, True)
        uncached = _measure(model, vocab, prompt_len, new_tokens, False)
        out["models"][name] = {"cached": cached, "uncached": uncached,
                               "speedup": round(cached["tok_per_s"] / uncached["tok_per_s"], 2)}
    out["speedup"] = min(m["speedup"] for m in out["models"].values())
    out["first_token_ms"] = out["models"]["cpu-tiny"]["cached"]["first_token_ms"]
    return out
