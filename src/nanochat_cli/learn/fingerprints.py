"""Known bugs and their fingerprints: when a component does not match the reference, run known-buggy
variants of the reference on the same inputs and weights; the variant the learner's output matches
names the likely cause.

A variant is the reference component's own source with one textual mutation (regex → replacement),
compiled in the reference module's namespace, or — where the bug is a different formulation rather than
an edit (an L2 norm instead of RMS, interleaved rotary pairs) — a small function given the same inputs.
Matching by output, not by reading the learner's code, names the bug however it was written (a
hand-written attention without a mask is still "missing causal mask"). Costs one extra call of the
component per known bug (~1 ms each at the tiny config), and only after a mismatch.
A mutation that no longer applies to the reference is an error the tests catch (tests/learn).
Some textbook bugs are *not* bugs in this architecture (rotary after QK-norm: a rotation keeps the RMS,
so the two orders agree): those are listed with `equivalent=True` and a learner who writes them passes.
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Bug:
    component: str
    name: str
    cause: str
    old: str | None = None  # regex on the reference component's source (multiline mode)
    new: str = ""
    fn: Callable | None = None  # or: a function of the component's inputs (self first for methods)
    equivalent: bool = False  # the "bug" gives the reference's output in this architecture


# Attention kernels with one thing wrong, called like F.scaled_dot_product_attention on (B, H, T, D).
def _attend(q, k, v, attn_mask=None, is_causal=False, scale=None, enable_gqa=False, softmax_dim=-1,
            scale_override=None, drop_mask=False, **_):
    if enable_gqa and k.size(1) != q.size(1):
        rep = q.size(1) // k.size(1)
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    d = q.size(-1)
    s = scale_override if scale_override is not None else (scale if scale is not None else 1 / math.sqrt(d))
    att = (q @ k.transpose(-2, -1)) * s
    Tq, Tk = q.size(-2), k.size(-2)
    if not drop_mask:
        if is_causal:
            keep = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(diagonal=Tk - Tq)
            att = att.masked_fill(~keep, float("-inf"))
        elif attn_mask is not None:
            att = att.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else att + attn_mask
    return torch.softmax(att, dim=softmax_dim) @ v


HELPERS = {
    "_sdpa_no_mask": lambda *a, **k: _attend(*a, **k, drop_mask=True),
    "_sdpa_softmax_queries": lambda *a, **k: _attend(*a, **k, softmax_dim=-2),
    "_sdpa_unscaled": lambda *a, **k: _attend(*a, **k, scale_override=1.0),
    "_sdpa_scale_by_d": lambda q, *a, **k: _attend(q, *a, **k, scale_override=1.0 / q.size(-1)),
}
SDPA = r"F\.scaled_dot_product_attention\("


def _l2_norm(x):
    return x / x.norm(dim=-1, keepdim=True)


def _layer_norm(x):
    return F.layer_norm(x, (x.size(-1),))


def _rms_wrong_axis(x):
    return x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + 1e-6)


def _rotary_interleaved(x, cos, sin):
    if cos.dim() == 2:  # (T, D/2) -> (T, 1, D/2): broadcast over heads
        cos, sin = cos[:, None, :], sin[:, None, :]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2)


ROTATION = r"\[x1 \* cos - x2 \* sin, x1 \* sin \+ x2 \* cos\]"
CROSS_ENTROPY = r"F\.cross_entropy\(logits\.view\(-1, logits\.size\(-1\)\), targets\.reshape\(-1\)"

BUGS: list[Bug] = [
    # norm
    Bug("norm", "L2 norm instead of RMS", "divides by the vector's length (‖x‖) instead of its root-mean-square "
        "(‖x‖/√C): the result is √C times too small", fn=_l2_norm),
    Bug("norm", "LayerNorm instead of RMSNorm", "subtracts the mean before normalising (that is LayerNorm; "
        "RMSNorm only rescales)", fn=_layer_norm),
    Bug("norm", "normalised over the wrong axis", "the mean of squares runs over a dimension other than the "
        "last (use dim=-1, keepdim=True)", fn=_rms_wrong_axis),
    # rotary
    Bug("rotary", "interleaved channel pairs", "pairs channels (0,1), (2,3)… while the reference pairs channel i "
        "with i + D/2 (first half with second half)", fn=_rotary_interleaved),
    Bug("rotary", "rotation in the other direction", "rotates by −θ where the reference rotates by +θ: "
        "(x1·cos − x2·sin, x1·sin + x2·cos)", old=ROTATION, new="[x1 * cos + x2 * sin, -x1 * sin + x2 * cos]"),
    Bug("rotary", "cos and sin swapped", "uses sin where cos belongs and vice versa", old=ROTATION,
        new="[x1 * sin - x2 * cos, x1 * cos + x2 * sin]"),
    # attention kernel
    Bug("sdpa", "missing causal mask", "every query attends to later positions too: pass is_causal=True (or "
        "mask the scores above the diagonal with -inf before the softmax)", old=SDPA, new="_sdpa_no_mask("),
    Bug("sdpa", "wrong softmax axis", "the softmax normalises over the queries (dim=-2) instead of the keys "
        "(dim=-1): each query's attention weights must sum to 1", old=SDPA, new="_sdpa_softmax_queries("),
    Bug("sdpa", "missing 1/√d scaling", "the scores q·k are not divided by √head_dim", old=SDPA,
        new="_sdpa_unscaled("),
    Bug("sdpa", "wrong scaling (1/d instead of 1/√d)", "the scores are divided by head_dim instead of "
        "√head_dim", old=SDPA, new="_sdpa_scale_by_d("),
    # attention
    Bug("attention", "missing QK-norm", "q and k are not normalised (q, k = norm(q), norm(k)) after the rotary",
        old=r"^(\s*)q, k = norm\(q\), norm\(k\).*$", new=r"\1pass"),
    Bug("attention", "missing rotary embedding", "q and k are not rotated by position (apply_rotary)",
        old=r"^(\s*)q, k = apply_rotary\(q, cos, sin\), apply_rotary\(k, cos, sin\).*$", new=r"\1pass"),
    Bug("attention", "rotary applied after QK-norm", "(not a bug here: a rotation keeps the RMS, so both orders "
        "give the same q and k)", old=r"^(\s*)(q, k = apply_rotary.*)\n(\s*)(q, k = norm\(q\), norm\(k\).*)$",
        new=r"\1\4\n\3\2", equivalent=True),
    Bug("attention", "transposed heads", "the heads were merged without moving them back next to the channels: "
        "(B, H, T, D) → transpose(1, 2) → (B, T, H, D) before reshaping to (B, T, C)",
        old=r"y = y\.transpose\(1, 2\)\.reshape\(B, T, C\)", new="y = y.reshape(B, T, C)"),
    # block
    Bug("block", "missing residual connection (attention)", "the attention output replaces x instead of being "
        "added to it: x = x + self.attn(...)", old=r"x = x \+ self\.attn\(", new="x = self.attn("),
    Bug("block", "missing residual connection (MLP)", "the MLP output replaces x instead of being added to it: "
        "x = x + self.mlp(...)", old=r"x = x \+ self\.mlp\(", new="x = self.mlp("),
    Bug("block", "sub-layer input not normalised", "attention and MLP must see norm(x) (pre-norm), not x",
        old=r"self\.(attn|mlp)\(norm\(x\)", new=r"self.\1(x"),
    # mlp
    Bug("mlp", "ReLU instead of ReLU²", "the activation is relu(x) without squaring", old=r"\.square\(\)", new=""),
    Bug("mlp", "square without ReLU", "squares x without the ReLU first, so negative inputs become positive",
        old=r"F\.relu\((.+?)\)\.square\(\)", new=r"(\1).square()"),
    Bug("mlp", "GELU instead of ReLU²", "uses GELU; this model uses relu(x)²",
        old=r"F\.relu\((.+?)\)\.square\(\)", new=r"F.gelu(\1)"),
    # embedding
    Bug("embedding", "embedding not normalised", "the token embeddings go into the first block without norm()",
        old=r"^(\s*)x = norm\((.+)\)\s*$", new=r"\1x = \2"),
    # logits
    Bug("logits", "missing logit softcap", "logits must be squashed: softcap * tanh(logits / softcap)",
        old=r"return cap \* torch\.tanh\(logits / cap\)", new="return logits"),
    Bug("logits", "padding columns not dropped", "the lm_head has padded_vocab_size outputs; keep the first "
        "vocab_size: [..., :self.config.vocab_size]", old=r"\[\.\.\., :self\.config\.vocab_size\]", new=""),
    # loss
    Bug("loss", "targets shifted again", "the targets are already the next tokens; shifting logits/targets by "
        "one more position compares each token with the one two steps ahead", old=CROSS_ENTROPY,
        new="F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1)"),
    Bug("loss", "loss not shifted (predicting the input)", "the loss compares position t with the input token t "
        "itself instead of the next token (targets)", old=r"targets\.reshape\(-1\)", new="idx.reshape(-1)"),
    Bug("loss", "sum instead of mean", "the loss is summed over tokens instead of averaged",
        old=r"reduction=loss_reduction", new='reduction="sum" if loss_reduction == "mean" else loss_reduction'),
]


def bugs_for(component: str) -> list[Bug]:
    return [b for b in BUGS if b.component == component]


def mutated_source(source: str, bug: Bug) -> str:
    """The reference code with the bug planted; ValueError if the mutation does not apply."""
    new, n = re.subn(bug.old, bug.new, source, flags=re.M)
    if n == 0:
        raise ValueError(f"known bug '{bug.name}' ({bug.component}) no longer applies to the reference")
    return new


def variant_function(comp, bug: Bug, ref_module, ref_text: str):
    """The reference's function for `comp` with the bug planted inside the component's own lines (so a
    region bug never touches the rest of the function), compiled in the reference module's namespace."""
    if bug.fn is not None:
        return bug.fn
    from nanochat_cli.learn import source

    span = source.locate(ref_text, comp, reference=True)
    lines = ref_text.splitlines()
    region = "\n".join(lines[span.start:span.end])
    text = "\n".join(lines[:span.start] + mutated_source(region, bug).splitlines() + lines[span.end:]) + "\n"
    node = source.find_function(source.parse(text), comp.target)
    code = textwrap.dedent("\n".join(text.splitlines()[node.lineno - 1:node.end_lineno]))
    namespace = dict(vars(ref_module))
    namespace.update(HELPERS)
    exec(compile(code, f"<{comp.name} with bug: {bug.name}>", "exec"), namespace)
    return namespace[node.name]
