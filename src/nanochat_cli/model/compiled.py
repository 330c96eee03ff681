"""The fast training step: what `prepare_for_training` does to a GPT, kept apart so gpt.py stays readable.

It changes no parameter and no state_dict key. It sets the compute dtype (explicit casts, no autocast:
under torch.compile on CPU autocast ran at 4,171 vs 5,498 tok/s, docs/explanation/cpu-training-speed.md), compiles the trunk with an
eager fallback, swaps in a hand-written attention on CPU (bf16 AVX512 CPU: 25–30 ms/step less than SDPA;
fp32 on a 2-core AVX2 EPYC: a tie, 1,013 vs 1,023 tok/s of CPU time), computes the loss with a chunked
head that never holds the full fp32 logits and makes its own gradient, and on glibc keeps freed memory
in the heap (a fresh 64 MB logits tensor cost ~22 ms of page faults). Generation (kv_cache) and
per-token losses take the plain model's path.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import sys

import torch

from nanochat_cli.model.gpt import GPT, sdpa_attention
from nanochat_cli.model.precision import compile_or_eager, resolve_compile

_log = logging.getLogger("nanochat_cli.model")

# Rows of the loss head per chunk: 512 × 8192 vocab × 4 B = 16 MB of fp32 logits at a time.
LOSS_CHUNK_ROWS = 512
# Attention kernel for compiled CPU training: "manual" (written out, fused by inductor) or "sdpa".
CPU_ATTENTION = "manual"


def manual_causal_attention(q, k, v, n_past: int):
    """softmax(QK^T/√D + causal mask)·V written out, for compiled CPU training (q/k/v: (B, H, T, D)).
    Inductor fuses the mask, scale and softmax; SDPA's CPU kernel is not fused into the graph."""
    if n_past != 0 or q.size(2) == 1:
        return sdpa_attention(q, k, v, n_past)
    if k.size(1) != q.size(1):  # GQA: each key/value head serves H/Hkv query heads
        k = k.repeat_interleave(q.size(1) // k.size(1), dim=1)
        v = v.repeat_interleave(q.size(1) // v.size(1), dim=1)
    T = q.size(2)
    scores = (q @ k.mT) * (1.0 / math.sqrt(q.size(-1)))  # (B, H, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    return torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v


def loss_and_grads_of_chunk(x, w, targets, vocab: int, cap: float):
    """Summed soft-capped cross-entropy of rows x (n, C) against targets (n,), with its gradients wrt x
    and the head weight w (Vp, C), all in one pass: dL/dz = softmax(z) - onehot; z = cap·tanh(l/cap)
    so dz/dl = 1 - tanh². Rows with target -1 count for nothing.

    Written for the compiled CPU kernel (~30% less time than tanh + logsumexp, the same values to 1e-7):
    tanh(u) = 1 - 2/(e^{2u} + 1) uses the fast vectorised exp, and since |z| <= cap the log-sum-exp needs
    no max pass (e^15 × a 2^20-token vocabulary is far from fp32's range) and e^z is computed once."""
    logits = (x @ w.mT)[:, :vocab].float()  # (n, V)
    th = 1.0 - 2.0 / (torch.exp(logits * (2.0 / cap)) + 1.0)  # tanh(logits / cap); exp overflow -> 1, fine
    z = cap * th
    ez = torch.exp(z)
    sum_ez = ez.sum(dim=-1)
    lse = torch.log(sum_ez)
    valid = targets >= 0
    safe = targets.clamp_min(0)
    loss = ((lse - z.gather(1, safe[:, None]).squeeze(1)) * valid).sum()
    is_target = torch.arange(vocab, device=x.device)[None, :] == safe[:, None]  # (n, V), fused, not stored
    dz = ez / sum_ez[:, None] - is_target.to(z.dtype)
    dlogits = (dz * valid[:, None] * (1 - th * th)).to(x.dtype)  # (n, V)
    dx = dlogits @ w[:vocab]  # (n, C)
    dw = (dlogits.mT @ x).float()  # (V, C)
    return loss, dx, dw


class ChunkedLossHead(torch.autograd.Function):
    """Mean loss over valid targets; forward computes the gradients chunk by chunk, backward scales them."""

    @staticmethod
    def forward(ctx, x, weight, targets, vocab, cap, chunk_fn, rows):
        w = weight.to(x.dtype)
        dx = torch.empty_like(x)
        dw = torch.zeros_like(weight)  # fp32, padded rows stay zero
        total = x.new_zeros((), dtype=torch.float32)
        for s in range(0, x.size(0), rows):
            loss, dx_c, dw_c = chunk_fn(x[s:s + rows], w, targets[s:s + rows], vocab, cap)
            total += loss
            dx[s:s + rows] = dx_c
            dw[:vocab] += dw_c
        n_valid = (targets >= 0).sum().clamp_min(1).to(torch.float32)
        ctx.save_for_backward(dx, dw, n_valid)
        return total / n_valid

    @staticmethod
    def backward(ctx, grad):
        dx, dw, n_valid = ctx.saved_tensors
        scale = grad / n_valid
        return dx * scale.to(dx.dtype), dw * scale, None, None, None, None, None


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """glibc: serve big allocations from the heap and never trim it, so the per-step logits and
    activations reuse warm pages (10–15% of the step here, docs/explanation/cpu-training-speed.md). Costs RSS held at its peak."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    ok = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    return bool(ok and libc.mallopt(M_TOP_PAD, 64 << 20))


def prepare_for_training(model: GPT, cfg, device, dtype) -> GPT:
    """Make `model(idx, targets)` the fast training step for this device/dtype; see the module header.
    Sets `model.training_setup` (dict: compiled, compile_reason, attention, loss_head) for reports."""
    device = torch.device(device)
    model.compute_dtype = dtype
    do_compile, why = resolve_compile(cfg, device)
    if device.type == "cpu":
        keep_freed_memory()
        if do_compile and CPU_ATTENTION == "manual":  # eager, manual attention is slower than SDPA
            for block in model.transformer.h:
                block.attn.attend = manual_causal_attention
    plain_forward = GPT.forward.__get__(model)
    trunk = compile_or_eager(model.hidden_states, do_compile, "the model trunk", dynamic=False)
    chunk_fn = compile_or_eager(loss_and_grads_of_chunk, do_compile, "the loss head", dynamic=False)
    evaluate = compile_or_eager(plain_forward, do_compile, "the evaluation forward", dynamic=False)

    def forward(idx, targets=None, kv_cache=None, loss_reduction="mean"):
        if kv_cache is not None:  # generation: the plain model (one token at a time, shapes change)
            return plain_forward(idx, targets, kv_cache, loss_reduction)
        if targets is None or loss_reduction != "mean" or not torch.is_grad_enabled():
            return evaluate(idx, targets, loss_reduction=loss_reduction)
        x = trunk(idx)  # (B, T, C)
        B, T, C = x.shape
        return ChunkedLossHead.apply(x.view(B * T, C), model.lm_head.weight, targets.reshape(B * T),
                                     model.config.vocab_size, model.config.softcap, chunk_fn, LOSS_CHUNK_ROWS)

    model.forward = forward  # an instance attribute: parameters and state_dict keys stay the same
    model.training_setup = {"compiled": do_compile, "compile_reason": why, "dtype": str(dtype).replace("torch.", ""),
                            "attention": model.transformer.h[0].attn.attend.__name__,
                            "loss_head": f"chunked ({LOSS_CHUNK_ROWS} rows)"}
    return model
