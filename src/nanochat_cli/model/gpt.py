"""The reference GPT: nanochat's architecture, written to read top-down like nanoGPT.

Choices (each explained in docs/explanation/model-architecture.md):
- rotary position embeddings, no learned positions; QK-norm after rotary
- pre-norm with a parameter-free RMSNorm (also after the embedding and before the head), no biases
- ReLU² MLP of 4× width; untied token embedding and lm_head; logits soft-capped at ±15
- optional grouped-query attention (n_kv_head < n_head); vocab padded to a multiple of 64
- nanochat's init: lm_head ~N(0, 0.001) so the first loss is ln(vocab), output projections zero
Weights stay fp32 (the optimizers' master copy); every matmul runs in `self.compute_dtype` by casting
the weight to the activation dtype, so bf16 needs no autocast (inside torch.compile on CPU autocast cost
~24% of the step: docs/explanation/cpu-training-speed.md). Speed tricks for training live in model/compiled.py.
Maintainers: learn mode matches this file's lines by pattern (learn/skeleton.py derives the learner's
skeleton from it, learn/fingerprints.py its known bugs), so reformat it only with tests/learn run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

# Rows of the rotary table beyond seq_len, so generation may run past the training context.
ROTARY_HEADROOM = 10
ROTARY_BASE = 10_000.0


@dataclass
class GPTConfig:
    vocab_size: int
    n_layer: int
    n_embd: int
    n_head: int
    n_kv_head: int
    seq_len: int
    softcap: float = 15.0
    pad_vocab_to: int = 64

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_kv_head {self.n_kv_head} must divide n_head {self.n_head}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        # A multiple of 64 keeps the lm_head matmul on fast kernel tiles; padding rows are never read out.
        return -(-self.vocab_size // self.pad_vocab_to) * self.pad_vocab_to

    @classmethod
    def from_config(cls, cfg, vocab_size: int) -> "GPTConfig":
        m = cfg.model
        return cls(vocab_size=vocab_size, n_layer=m.depth, n_embd=m.width, n_head=m.n_heads,
                   n_kv_head=m.n_kv_heads or m.n_heads, seq_len=m.seq_len, softcap=m.softcap)


def norm(x: torch.Tensor) -> torch.Tensor:
    """RMSNorm without a learnable gain: nanochat found the gain unnecessary (one fewer param group)."""
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len: int, head_dim: int, base: float = ROTARY_BASE) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (seq_len, head_dim/2): position t rotates channel pair i by t·base^(-2i/d)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (x1, x2) halves of the head dimension; x: (B, T, H, D), cos/sin: (T, D/2)."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    cos, sin = cos[:, None, :], sin[:, None, :]  # (T, 1, D/2): broadcast over heads
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Linear(nn.Linear):
    """A bias-free linear layer whose fp32 weight is cast to the activation dtype (bf16 or fp32) on use."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.to(x.dtype))


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_past: int) -> torch.Tensor:
    """Causal attention with torch's fused kernel. q: (B, H, Tq, D), k/v: (B, Hkv, Tk, D) with
    Tk = n_past + Tq; query i sits at absolute position n_past + i and sees keys 0..n_past+i."""
    gqa = q.size(1) != k.size(1)
    tq, tk = q.size(2), k.size(2)
    if tq == 1:  # one new token: it sees the whole cache, no mask needed
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
    if n_past == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    # Prefill after a prefix: is_causal would align the mask top-left, so build it explicitly.
    mask = torch.arange(tk, device=q.device)[None, :] <= (n_past + torch.arange(tq, device=q.device))[:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.c_q = Linear(config.n_embd, self.n_head * self.head_dim)
        self.c_k = Linear(config.n_embd, self.n_kv_head * self.head_dim)
        self.c_v = Linear(config.n_embd, self.n_kv_head * self.head_dim)
        self.c_proj = Linear(config.n_embd, config.n_embd)
        # Swappable attention kernel (model/compiled.py puts a faster one here for CPU training).
        self.attend = sdpa_attention

    def forward(self, x, cos, sin, kv_cache=None):
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q, k = norm(q), norm(k)  # QK-norm: bounded attention logits, stable with Muon's large steps
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D)
        n_past = 0
        if kv_cache is not None:
            n_past = kv_cache.pos
            k, v = kv_cache.insert(self.layer_idx, k, v)  # (B, Hkv, n_past + T, D)
            k, v = k.to(q.dtype), v.to(q.dtype)  # a cache may be kept in another dtype than the compute one
        y = self.attend(q, k, v, n_past)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())  # ReLU²: sparse and sharp, cheap (Primer)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(self, x, cos, sin, kv_cache=None):
        x = x + self.attn(norm(x), cos, sin, kv_cache)
        x = x + self.mlp(norm(x))
        return x


class KVCache:
    """Keys and values of every layer for generation: (n_layer, B, n_kv_head, seq_len, head_dim) each.

    `pos` is the number of positions already stored; the model writes each layer's new keys/values at
    `pos` and advances `pos` after its last layer, so a prefill of T tokens then one token per step
    works. `reset()` empties it for reuse."""

    def __init__(self, batch_size, seq_len, n_layer, n_kv_head, head_dim, device, dtype):
        shape = (n_layer, batch_size, n_kv_head, seq_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.n_layer, self.seq_len, self.batch_size = n_layer, seq_len, batch_size
        self.pos = 0

    def reset(self) -> None:
        self.pos = 0

    def insert(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, Hkv, T, D) at `pos`; return all keys/values so far (views, no copy)."""
        end = self.pos + k.size(2)
        if end > self.seq_len:
            raise ValueError(f"KV cache full: {end} positions needed, {self.seq_len} allocated")
        self.k[layer, :, :, self.pos:end] = k
        self.v[layer, :, :, self.pos:end] = v
        if layer == self.n_layer - 1:
            self.pos = end
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def prefill_from(self, other: "KVCache") -> None:
        """Copy a batch-1 (or same-batch) cache into this one, e.g. one prompt prefilled, N samples drawn."""
        n = other.pos
        if n > self.seq_len:
            raise ValueError(f"source cache holds {n} positions, this one only {self.seq_len}")
        self.k[:, :, :, :n] = other.k[:, :, :, :n]
        self.v[:, :, :, :n] = other.v[:, :, :, :n]
        self.pos = n


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.compute_dtype = torch.float32  # dtype of activations and matmuls; weights stay fp32
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(config.padded_vocab_size, config.n_embd),
            "h": nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
        })
        self.lm_head = Linear(config.n_embd, config.padded_vocab_size)
        cos, sin = rotary_tables(config.seq_len * ROTARY_HEADROOM, config.head_dim)
        self.register_buffer("cos", cos, persistent=False)  # derived, so not saved in checkpoints
        self.register_buffer("sin", sin, persistent=False)

    @torch.no_grad()
    def init_weights(self) -> None:
        """nanochat's init. Embedding ~N(0, 1); lm_head ~N(0, 0.001), so logits start near 0 and the
        first loss is ln(vocab); block inputs uniform with std 1/√fan_in (uniform has no outliers);
        attention and MLP output projections zero, so every block starts as the identity."""
        nn.init.normal_(self.transformer.wte.weight, mean=0.0, std=1.0)
        nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.001)
        bound = math.sqrt(3) / math.sqrt(self.config.n_embd)  # uniform(-b, b) has std b/√3
        for block in self.transformer.h:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.uniform_(lin.weight, -bound, bound)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
        # Recomputed here so a model built on the meta device and moved with to_empty() is complete.
        cos, sin = rotary_tables(self.cos.size(0), self.config.head_dim)
        self.cos, self.sin = cos.to(self.cos.device), sin.to(self.sin.device)

    # --- accounting -------------------------------------------------------------------------------

    def param_counts(self) -> dict[str, int]:
        """Parameters by group (the optimizer groups): embedding, lm_head, block matrices, total."""
        counts = {
            "wte": self.transformer.wte.weight.numel(),
            "lm_head": self.lm_head.weight.numel(),
            "blocks": sum(p.numel() for p in self.transformer.h.parameters()),
        }
        counts["total"] = sum(counts.values())
        counts["matmul"] = counts["blocks"] + counts["lm_head"]  # the ones that cost FLOPs per token
        return counts

    def estimate_flops(self) -> int:
        """Training FLOPs per token: 6 per matmul weight (2 forward + 4 backward) plus attention's
        QK^T and AV, 12·L·H·D·T (PaLM appendix B). The embedding is a lookup and costs none."""
        c = self.config
        attention = 12 * c.n_layer * c.n_head * c.head_dim * c.seq_len
        return 6 * self.param_counts()["matmul"] + attention

    # --- forward ----------------------------------------------------------------------------------

    def hidden_states(self, idx: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Token ids (B, T) -> final normalised residual stream (B, T, C) in compute_dtype."""
        B, T = idx.shape
        t0 = 0 if kv_cache is None else kv_cache.pos
        if t0 + T > self.cos.size(0):
            raise ValueError(f"sequence of {t0 + T} positions exceeds the rotary table ({self.cos.size(0)})")
        cos = self.cos[t0:t0 + T].to(self.compute_dtype)
        sin = self.sin[t0:t0 + T].to(self.compute_dtype)
        x = norm(self.transformer.wte(idx).to(self.compute_dtype))
        for block in self.transformer.h:
            x = block(x, cos, sin, kv_cache)
        return norm(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states (..., C) -> soft-capped fp32 logits (..., vocab_size), padding dropped."""
        logits = self.lm_head(x)[..., :self.config.vocab_size].float()
        cap = self.config.softcap
        return cap * torch.tanh(logits / cap)  # smooth clamp to (-cap, cap)

    def forward(self, idx, targets=None, kv_cache=None, loss_reduction: str = "mean"):
        """Logits (B, T, vocab_size) in fp32, or with targets the cross-entropy loss (targets == -1 are
        ignored; loss_reduction "none" gives one loss per token, flattened to (B·T,))."""
        logits = self.logits(self.hidden_states(idx, kv_cache))
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1,
                               reduction=loss_reduction)
