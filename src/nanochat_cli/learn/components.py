"""The learn-mode components: which code of the reference model each one is, how it is checked, what it
must compute, its hints (level by level) and the questions the progress file asks.

The list is in the order one training iteration reaches the code (construction, forward pass — outer
code before the code it calls —, loss, then init, then generation), which is the order `learn step`
walks and `learn status` prints; tests/learn prove that order mechanically by filling the skeleton in
one component at a time. A component is a function of the reference (`target`) or a region of one
(`start`/`end` patterns; `after:` = the first line after the compound statement matching it).
The explanations live in docs/explanation/learn/components.md, one section per component.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from nanochat_cli.errors import UsageError


@dataclass(frozen=True)
class Component:
    name: str
    title: str
    target: str
    check: str
    computes: str
    shapes: tuple[str, ...]
    hints: tuple[str, ...]
    questions: tuple[str, ...] = ()
    start: str | None = None
    end: str | None = None
    debug: tuple[str, ...] = ()

    @property
    def is_region(self) -> bool:
        return self.start is not None or self.end is not None


COMPONENTS: list[Component] = [
    Component(
        "config", "padded vocabulary size", "GPTConfig.padded_vocab_size", "config",
        "vocab_size rounded up to the next multiple of pad_vocab_to (64)",
        ("in:  self.vocab_size, self.pad_vocab_to (ints)", "out: an int >= vocab_size, a multiple of pad_vocab_to"),
        ("The embedding and lm_head get a few extra rows so their size is a multiple of 64; the extra rows "
         "are never read out.",
         "Round up with integer arithmetic: ceil(a / b) * b without floats.",
         "-(-self.vocab_size // self.pad_vocab_to) * self.pad_vocab_to (or (v + p - 1) // p * p)."),
        ("Why would a vocabulary of 265 run faster as 320?",),
        debug=("self.vocab_size", "self.pad_vocab_to"),
    ),
    Component(
        "rotary-table", "rotary embedding table", "rotary_tables", "buffers",
        "cos and sin of the angle t·θ_i for every position t and channel pair i, θ_i = base^(-2i/head_dim)",
        ("in:  seq_len (int), head_dim (int), base (float)",
         "out: (cos, sin), each (seq_len, head_dim/2) float32"),
        ("Each channel pair i of a head is rotated by an angle that grows linearly with the position t; its "
         "speed θ_i falls geometrically with i, from 1 down to ~1/base.",
         "inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim); "
         "angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq).",
         "return angles.cos(), angles.sin() — shape (seq_len, head_dim/2), float32."),
        ("Why does rotating q and k by position-dependent angles make q·k depend only on the *distance* "
         "between the two positions?",),
    ),
    Component(
        "embedding", "token embedding", "GPT.hidden_states", "embedding",
        "the rotary rows for these positions and the normalised token embeddings x (B, T, C)",
        ("in:  idx (B, T) int64 token ids; kv_cache (None while training)",
         "out: cos, sin (T, head_dim/2) and x (B, T, n_embd) in self.compute_dtype"),
        ("Look the ids up in the embedding table (self.transformer.wte), then RMS-normalise them. The rotary "
         "tables self.cos/self.sin cover 10× the context: take the rows of the positions you process.",
         "t0 = 0 without a KV cache, else kv_cache.pos; cos = self.cos[t0:t0 + T], same for sin; "
         "x = norm(self.transformer.wte(idx)).",
         "Cast to self.compute_dtype (.to(self.compute_dtype)) and keep the names cos, sin and x: the loop "
         "over the blocks after your code uses them."),
        ("Why normalise the embedding output before the first block?",),
        end=r"^\s*for .+ in .+\.h\b", debug=("idx", "kv_cache"),
    ),
    Component(
        "norm", "RMSNorm", "norm", "call",
        "x divided by the root-mean-square of its last dimension (no learnable gain)",
        ("in:  x (..., C)", "out: same shape and dtype as x"),
        ("RMSNorm rescales each vector to unit root-mean-square: no mean subtraction (unlike LayerNorm) and "
         "here no learnable weight.",
         "x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps), or F.rms_norm(x, (x.size(-1),)).",
         "Normalise over the last dimension only (dim=-1, keepdim=True so it broadcasts back)."),
        ("Why can this model skip LayerNorm's mean subtraction and learnable gain?",),
    ),
    Component(
        "block", "transformer block", "Block.forward", "call",
        "pre-norm residual block: x + attention(norm(x)), then x + mlp(norm(x))",
        ("in:  x (B, T, C), cos, sin (T, D/2), kv_cache", "out: (B, T, C), same shape as x"),
        ("Two sub-layers, each *added* to the residual stream: the block never overwrites x.",
         "x = x + self.attn(norm(x), cos, sin, kv_cache); x = x + self.mlp(norm(x)); return x.",
         "Normalise the *input* of each sub-layer (pre-norm), not its output."),
        ("What would happen to the gradients of a 20-layer model without the residual connections?",),
    ),
    Component(
        "attention", "causal self-attention", "CausalSelfAttention.forward", "call",
        "queries, keys, values per head, rotary and QK-norm, the KV cache, attention, heads merged and projected",
        ("in:  x (B, T, C), cos, sin (T, D/2), kv_cache (None while training)", "out: (B, T, C)"),
        ("Project x to q, k, v and split the channels into heads: (B, T, H, D). Rotate q and k (apply_rotary), "
         "normalise them (norm), move heads before time, attend with self.attend, merge the heads, c_proj.",
         "q = self.c_q(x).view(B, T, self.n_head, self.head_dim) (k, v with self.n_kv_head); "
         "q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin); q, k = norm(q), norm(k); "
         "q, k, v = q.transpose(1, 2), ... ; y = self.attend(q, k, v, n_past).",
         "With a cache: n_past = kv_cache.pos; k, v = kv_cache.insert(self.layer_idx, k, v) before attending. "
         "Merge: y.transpose(1, 2).reshape(B, T, C), then self.c_proj(y)."),
        ("What does QK-norm change about the size of the attention scores?",),
    ),
    Component(
        "rotary", "rotary embedding", "apply_rotary", "call",
        "rotate each channel pair (x1, x2) = (first half, second half) of every head by its position's angle",
        ("in:  x (B, T, H, D), cos, sin (T, D/2)", "out: same shape as x"),
        ("Split the last dim into halves x1 = x[..., :D/2] and x2 = x[..., D/2:]; the pair (x1_i, x2_i) is a "
         "2-D point rotated by the angle whose cos/sin are given for its position.",
         "A rotation by θ: (x1·cos − x2·sin, x1·sin + x2·cos). cos/sin are (T, D/2): add a heads axis, "
         "cos[:, None, :], to broadcast against (B, T, H, D/2).",
         "torch.cat([y1, y2], dim=-1): the halves are contiguous blocks, not interleaved even/odd channels."),
        ("Rotation keeps a vector's length: why does that make the order of rotary and QK-norm irrelevant here?",),
    ),
    Component(
        "sdpa", "causal scaled dot-product attention", "sdpa_attention", "call",
        "softmax(q·kᵀ/√D) · v where query i sees keys 0..n_past+i only (causal), for every head",
        ("in:  q (B, H, Tq, D), k, v (B, Hkv, Tk, D), n_past (int; Tk = n_past + Tq)", "out: (B, H, Tq, D)"),
        ("Scores are dot products of each query with every key, scaled by 1/√D; a query must not see keys of "
         "later positions (mask them to -inf); a softmax over the keys gives weights for averaging the values.",
         "F.scaled_dot_product_attention(q, k, v, is_causal=True) does it all when n_past == 0. With Hkv < H "
         "pass enable_gqa=True (or repeat_interleave k and v).",
         "With a cache: one new query (Tq == 1) sees every key (no mask); a longer prefill after a prefix needs "
         "an explicit mask: key j allowed for query i when j <= n_past + i."),
        ("Why divide the scores by √D?", "What exactly goes wrong in training if the causal mask is missing?"),
    ),
    Component(
        "mlp", "MLP", "MLP.forward", "call",
        "c_fc to 4×C, ReLU², c_proj back to C",
        ("in:  x (B, T, C)", "out: (B, T, C)"),
        ("An up-projection, a non-linearity applied element-wise, a down-projection.",
         "self.c_proj(F.relu(self.c_fc(x)).square()).",
         "ReLU squared: relu first, then square (square alone would make negative inputs positive)."),
        ("Why is the hidden layer 4× wider than the residual stream?",),
    ),
    Component(
        "logits", "logits and softcap", "GPT.logits", "call",
        "lm_head projection, padding columns dropped, float32, soft-capped to (−softcap, softcap)",
        ("in:  x (B, T, C) final normalised hidden states", "out: (B, T, vocab_size) float32"),
        ("Project to the (padded) vocabulary with self.lm_head, drop the padding columns, switch to float32, "
         "then squash smoothly into (−softcap, softcap).",
         "logits = self.lm_head(x)[..., :self.config.vocab_size].float().",
         "cap = self.config.softcap; return cap * torch.tanh(logits / cap)."),
        ("What does the softcap protect against, and why tanh rather than clamp?",),
    ),
    Component(
        "loss", "cross-entropy loss", "GPT.forward", "loss",
        "the logits when there are no targets, else their cross-entropy with targets (ignore_index=-1)",
        ("in:  logits (B, T, V) float32, targets (B, T) int64 or None, loss_reduction",
         "out: logits, or the loss: a scalar ('mean') or (B*T,) ('none')"),
        ("The targets are already the next tokens (the data loader shifted them): compare position t's "
         "logits with targets[:, t] — do not shift again.",
         "F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1, "
         "reduction=loss_reduction).",
         "Without targets return the logits unchanged."),
        ("The loss of an untrained model is about ln(vocab_size). Why?",),
        start=r"^\s*if targets is None", debug=("logits", "targets"),
    ),
    Component(
        "init", "weight initialisation", "GPT.init_weights", "init",
        "every parameter's initial values: embedding normal, matrices uniform ±√3/√C, output projections zero",
        ("in:  the model (no arguments)", "out: nothing; parameters filled in place"),
        ("Each block starts as the identity: its output projections (attn.c_proj, mlp.c_proj) are zero, so the "
         "residual stream passes through untouched at step 0.",
         "wte ~ N(0, 1); lm_head ~ N(0, 0.001); c_q, c_k, c_v, c_fc ~ U(-b, b) with b = √3/√n_embd "
         "(that uniform has std 1/√n_embd); both c_proj = 0.",
         "nn.init.normal_/uniform_/zeros_ under torch.no_grad(); recompute the rotary buffers with "
         "rotary_tables (a model built on the meta device has none)."),
        ("Why zero the output projections instead of giving them small random values?",),
    ),
    Component(
        "kv-cache", "KV cache", "KVCache.insert", "kvcache",
        "store this step's keys/values at the cache position and return all keys/values so far",
        ("in:  layer (int), k, v (B, H_kv, T, D)", "out: (k_all, v_all) each (B, H_kv, pos+T, D)"),
        ("Generation feeds one token at a time; instead of recomputing the keys and values of the whole "
         "prefix, keep them in self.k / self.v and append.",
         "Write k, v into self.k[layer, :, :, self.pos:end] (end = pos + T); return the slices up to end.",
         "Advance self.pos only after the last layer has inserted (every layer inserts at the same position); "
         "refuse to write past self.seq_len."),
        ("How much memory does the KV cache of a d20 model take for 2048 tokens of context?",),
    ),
]

BY_NAME = {c.name: c for c in COMPONENTS}


def get(name: str) -> Component:
    comp = BY_NAME.get(name)
    if comp is None:
        close = difflib.get_close_matches(name, list(BY_NAME), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"one of: {', '.join(BY_NAME)}"
        raise UsageError(f"unknown component '{name}'", f"{hint} (`nanochat learn status` lists them)")
    return comp
