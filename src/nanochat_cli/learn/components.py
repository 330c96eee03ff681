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
        "rotary-table", "rotary embedding table", "GPT._precompute_rotary_embeddings", "buffers",
        "the cos and sin of angle t·θ_i for every position t and channel pair i, θ_i = base^(-2i/head_dim)",
        ("in:  seq_len (int), head_dim (int), base (float)",
         "out: (cos, sin), each (1, seq_len, 1, head_dim/2) float32"),
        ("Each pair of channels (i, i + head_dim/2) is rotated by an angle that grows linearly with the "
         "position t; the speed of rotation θ_i falls geometrically with i, from 1 down to ~1/base.",
         "inv_freq = 1 / base ** (arange(0, head_dim, 2) / head_dim); freqs = outer(arange(seq_len), inv_freq); "
         "return cos and sin of freqs.",
         "Add the broadcast dims: cos[None, :, None, :] so it lines up with q of shape (B, T, H, D/2)."),
        ("Why does rotating q and k by position-dependent angles make q·k depend only on the *distance* "
         "between the two positions?",),
    ),
    Component(
        "embedding", "token embedding", "GPT.forward", "embedding",
        "the rotary slice for these positions, then the normalised token embeddings x (B, T, C)",
        ("in:  idx (B, T) int64 token ids; kv_cache (None while training)",
         "out: x (B, T, n_embd) float32 and cos_sin for the blocks"),
        ("Look the ids up in the embedding table (self.transformer.wte), then RMS-normalise them. The rotary "
         "tables self.cos/self.sin cover 10× the context: slice the positions you need.",
         "T0 = 0 without a KV cache, else kv_cache.pos; cos_sin = self.cos[:, T0:T0+T], self.sin[:, T0:T0+T]; "
         "x = norm(self.transformer.wte(idx)).",
         "Keep the variable names cos_sin and x: the code after your region uses them."),
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
         "Normalise over the last dimension only (dim=-1), keepdim=True so it broadcasts back."),
        ("Why can this model skip LayerNorm's mean subtraction and learnable gain?",),
    ),
    Component(
        "block", "transformer block", "Block.forward", "call",
        "pre-norm residual block: x + attention(norm(x)), then x + mlp(norm(x))",
        ("in:  x (B, T, C), cos_sin, kv_cache", "out: (B, T, C), same shape as x"),
        ("Two sub-layers, each added to the residual stream: the block never overwrites x, it adds to it.",
         "x = x + self.attn(norm(x), cos_sin, kv_cache); x = x + self.mlp(norm(x)).",
         "Normalise the *input* of each sub-layer (pre-norm), not its output."),
        ("What would happen to gradients in a 20-layer model without the residual connections?",),
    ),
    Component(
        "attention", "causal self-attention", "CausalSelfAttention.forward", "call",
        "multi-head causal self-attention with rotary positions and QK-norm, projected back to (B, T, C)",
        ("in:  x (B, T, C), cos_sin = (cos, sin) each (1, T, 1, D/2), kv_cache",
         "out: (B, T, C)"),
        ("Project x to q, k, v; split the channels into heads (B, T, H, D); rotate q and k (rotary); "
         "normalise q and k; attend causally; merge the heads; project with c_proj.",
         "q = self.c_q(x).view(B, T, self.n_head, self.head_dim) (same for k, v with n_kv_head); "
         "apply_rotary_emb then norm on q and k; "
         "F.scaled_dot_product_attention wants (B, H, T, D): transpose(1, 2) before and after.",
         "Causal: is_causal=True (token t must not see t+1). With a KV cache see the kv-cache component; "
         "merge heads with y.transpose(1, 2).contiguous().view(B, T, -1)."),
        ("Why divide the scores by sqrt(head_dim), and what does QK-norm change about that?",
         "What exactly goes wrong in training if the causal mask is missing?"),
    ),
    Component(
        "rotary", "rotary embedding", "apply_rotary_emb", "call",
        "rotate each channel pair (x1, x2) of every head by its position's angle",
        ("in:  x (B, T, H, D), cos, sin each (1, T, 1, D/2)", "out: same shape as x"),
        ("Split the last dim into halves x1 = x[..., :D/2] and x2 = x[..., D/2:]; each (x1_i, x2_i) pair is "
         "rotated by the angle whose cos/sin are given.",
         "y1 = x1 * cos + x2 * sin; y2 = -x1 * sin + x2 * cos (this rotates by -θ: only relative angles "
         "matter); concatenate along the last dim.",
         "torch.cat([y1, y2], dim=-1); the halves are contiguous blocks, not interleaved even/odd channels."),
        ("Rotation keeps a vector's length: why does that make the order of rotary and QK-norm irrelevant here?",),
    ),
    Component(
        "mlp", "MLP", "MLP.forward", "call",
        "c_fc to 4×C, ReLU², c_proj back to C",
        ("in:  x (B, T, C)", "out: (B, T, C)"),
        ("An up-projection, a non-linearity applied element-wise, a down-projection.",
         "x = self.c_fc(x); x = F.relu(x).square(); return self.c_proj(x).",
         "ReLU squared: relu first, then square (square alone would make negative inputs positive)."),
        ("Why is the hidden layer 4× wider than the residual stream?",),
    ),
    Component(
        "forward", "final norm and logits", "GPT.forward", "logits",
        "the final norm, the lm_head projection to vocabulary logits in float32, and the softcap",
        ("in:  x (B, T, C) after the last block", "out: logits (B, T, vocab_size) float32"),
        ("After the blocks: normalise, project to the vocabulary with self.lm_head, then squash the logits "
         "smoothly into (-softcap, softcap).",
         "x = norm(x); logits = self.lm_head(x).float(); logits = softcap * torch.tanh(logits / softcap) "
         "with softcap = self.config.softcap.",
         "Keep the name `logits`: the loss region below uses it."),
        ("What does the softcap protect against, and why tanh rather than clamp?",),
        start=r"after:^\s*for .+ in .+\.h\b", end=r"^\s*if targets is not None", debug=("x",),
    ),
    Component(
        "loss", "cross-entropy loss", "GPT.forward", "loss",
        "cross-entropy of the logits against targets (ignore_index=-1), or the logits when there are no targets",
        ("in:  logits (B, T, V) float32, targets (B, T) int64 or None, loss_reduction",
         "out: scalar loss ('mean') or (B*T,) ('none'); logits when targets is None"),
        ("The targets are already the next tokens (the data loader shifted them): compare position t's "
         "logits with targets[:, t] — do not shift again.",
         "F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1, "
         "reduction=loss_reduction).",
         "Without targets return the logits unchanged."),
        ("The loss of an untrained model is about ln(vocab_size). Why?",),
        start=r"^\s*if targets is not None", debug=("logits", "targets"),
    ),
    Component(
        "init", "weight initialisation", "GPT.init_weights", "init",
        "every parameter's initial values: embeddings normal, matrices uniform ±√3/√C, output projections zero",
        ("in:  the model (no arguments)", "out: nothing; parameters filled in place"),
        ("Each block starts as the identity: its output projections (attn.c_proj, mlp.c_proj) are zero, so the "
         "residual stream passes through untouched at step 0.",
         "wte ~ N(0, 1); lm_head ~ N(0, 0.001); c_q, c_k, c_v, c_fc ~ U(-s, s) with s = √3/√n_embd "
         "(the std of that uniform is 1/√n_embd); c_proj = 0.",
         "Use torch.nn.init.{normal_, uniform_, zeros_} under torch.no_grad(), in the order wte, lm_head, "
         "then per block c_q, c_k, c_v, c_proj, c_fc, c_proj (same order = same random numbers as the reference)."),
        ("Why zero the output projections instead of giving them small random values?",),
    ),
    Component(
        "kv-cache", "KV cache", "KVCache.insert_kv", "kvcache",
        "store this step's keys/values at the cache position and return all keys/values so far",
        ("in:  layer_idx (int), k, v (B, H_kv, T, D)", "out: (k_all, v_all) each (B, H_kv, pos+T, D)"),
        ("Generation feeds one token at a time; instead of recomputing the keys and values of the whole "
         "prefix, keep them in self.k / self.v and append.",
         "Write k, v into self.k[layer_idx, :, :, pos:pos+T]; return the slices up to pos+T.",
         "Advance self.pos only after the last layer has inserted (every layer inserts at the same position)."),
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
