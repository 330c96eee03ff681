"""Weights between our GPT, transformers' NanoChat and karpathy/nanochat: key names, the rotary sign, vocab padding.

Rotary direction: our `apply_rotary` turns channel pair (i, i + d/2) by +θ, nanochat and transformers' NanoChat by
−θ. A plain rename gave max |Δlogit| 4.5 and 82% argmax agreement (INTEROP-NOTES). With F = diag(1,…,1, −1,…,−1)
per head, rotate₊(F·x) = F·rotate₋(x), RMSNorm commutes with F and (F·q)·(F·k) = q·k, so negating rows d/2…d−1
of every head in the q and k projections makes one model compute exactly what the other does (an involution:
the same flip goes either way, and a round trip is bit-exact). Vocab: our embedding and head are padded to a
multiple of 64 and cut to the tokenizer's size on export (else padding ids could win an argmax); import pads
with zero rows, which nothing reads. Shapes and names are checked one by one: a missing, extra or misshapen
tensor is one line naming it, never a load_state_dict traceback.
"""

from __future__ import annotations

from typing import Any

from nanochat_cli.errors import UsageError

# our per-layer names → transformers' (nanochat's own names are ours)
LAYER_NAMES = {
    "attn.c_q": "self_attn.q_proj", "attn.c_k": "self_attn.k_proj", "attn.c_v": "self_attn.v_proj",
    "attn.c_proj": "self_attn.o_proj", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
}
# Parameters of later nanochat versions (2026) that our GPT does not have, by the name part that marks them.
LATER_NANOCHAT = {
    "value_embeds": "value embeddings", "ve_gate": "value-embedding gates",
    "resid_lambdas": "per-layer residual scales", "x0_lambdas": "per-layer input-embedding blends",
    "smear_gate": "token smearing", "smear_lambda": "token smearing", "backout_lambda": "the back-out residual",
}


def flip_rotary(w, n_heads: int, head_dim: int):
    """Negate rows head_dim/2 … head_dim−1 of every head of a q or k projection (n_heads·head_dim, C)."""
    w = w.clone()
    w.view(n_heads, head_dim, -1)[:, head_dim // 2:, :] *= -1
    return w


def our_shapes(c) -> dict[str, tuple[int, ...]]:
    """Our state_dict's keys and shapes for GPTConfig `c`."""
    C, D = c.n_embd, c.head_dim
    shapes = {"transformer.wte.weight": (c.padded_vocab_size, C), "lm_head.weight": (c.padded_vocab_size, C)}
    for i in range(c.n_layer):
        p = f"transformer.h.{i}."
        shapes.update({p + "attn.c_q.weight": (c.n_head * D, C), p + "attn.c_k.weight": (c.n_kv_head * D, C),
                       p + "attn.c_v.weight": (c.n_kv_head * D, C), p + "attn.c_proj.weight": (C, C),
                       p + "mlp.c_fc.weight": (4 * C, C), p + "mlp.c_proj.weight": (C, 4 * C)})
    return shapes


def _flip_if_qk(name: str, t, c):
    if name.endswith("attn.c_q.weight"):
        return flip_rotary(t, c.n_head, c.head_dim)
    if name.endswith("attn.c_k.weight"):
        return flip_rotary(t, c.n_kv_head, c.head_dim)
    return t


def to_hf_state(state: dict, c, dtype=None) -> dict[str, Any]:
    """Our state_dict → NanoChatForCausalLM's (renamed, q/k flipped, vocab cut), contiguous, in `dtype`."""
    import torch

    dtype = dtype or torch.float32
    out = {"model.embed_tokens.weight": state["transformer.wte.weight"][:c.vocab_size],
           "lm_head.weight": state["lm_head.weight"][:c.vocab_size]}
    for i in range(c.n_layer):
        for ours, theirs in LAYER_NAMES.items():
            name = f"transformer.h.{i}.{ours}.weight"
            out[f"model.layers.{i}.{theirs}.weight"] = _flip_if_qk(name, state[name], c)
    return {k: v.detach().to(dtype).contiguous().cpu() for k, v in out.items()}


def hf_to_our_names(c) -> dict[str, str]:
    """transformers' key → ours."""
    names = {"model.embed_tokens.weight": "transformer.wte.weight", "lm_head.weight": "lm_head.weight"}
    for i in range(c.n_layer):
        for ours, theirs in LAYER_NAMES.items():
            names[f"model.layers.{i}.{theirs}.weight"] = f"transformer.h.{i}.{ours}.weight"
    return names


def _later_feature(name: str) -> str | None:
    for part, what in LATER_NANOCHAT.items():
        if part in name.split("."):
            return what
    return None


def _unexpected(names: list[str], where: str) -> UsageError:
    later = sorted({w for n in names if (w := _later_feature(n))})
    shown = ", ".join(sorted(names)[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    if later:
        return UsageError(f"{where} has {', '.join(later)} ({shown}), which nanochat's GPT of late 2025 (and ours) "
                          "does not have; importing it would compute something else",
                          "import a checkpoint of the Oct–Dec 2025 architecture")
    return UsageError(f"{where} has tensors this model does not know: {shown}",
                      "only checkpoints of nanochat's architecture (no biases, no extra parameters) can be imported")


def to_our_state(tensors: dict, c, *, names: dict[str, str] | None, flip: bool, where: str,
                 ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """A foreign state dict → ours: renamed by `names` (None: the keys are already ours), q/k flipped when `flip`,
    vocab rows cut to vocab_size and zero-padded, fp32. Every missing, extra or misshapen tensor is refused by name.
    `ignore`: key suffixes that carry nothing (e.g. a saved rotary buffer)."""
    import torch

    renamed: dict[str, Any] = {}
    unexpected = []
    for key, t in tensors.items():
        key = key.removeprefix("_orig_mod.")  # torch.compile's prefix in nanochat checkpoints
        if any(key.endswith(s) for s in ignore):
            continue
        ours = key if names is None else names.get(key)
        if ours is None:
            unexpected.append(key)
        else:
            renamed[ours] = t
    shapes = our_shapes(c)
    unexpected += [k for k in renamed if k not in shapes]
    if unexpected:
        return_names = {v: k for k, v in (names or {}).items()}
        raise _unexpected([return_names.get(k, k) for k in unexpected], where)
    theirs = {v: k for k, v in (names or {}).items()}
    missing = [theirs.get(k, k) for k in shapes if k not in renamed]
    if missing:
        raise UsageError(f"{where} lacks {len(missing)} tensor(s) the model needs: {', '.join(missing[:4])}"
                         + (" …" if len(missing) > 4 else ""),
                         "pass a complete checkpoint of this architecture (its key names must match)")
    out = {}
    for name, shape in shapes.items():
        t = renamed[name]
        if not isinstance(t, torch.Tensor):
            raise UsageError(f"{where}: {theirs.get(name, name)} is a {type(t).__name__}, not a tensor")
        if not t.is_floating_point():
            raise UsageError(f"{where}: {theirs.get(name, name)} holds {t.dtype} values, not floating point")
        t = t.detach().to(torch.float32)
        if name in ("transformer.wte.weight", "lm_head.weight"):
            if t.dim() != 2 or t.size(1) != shape[1] or t.size(0) < c.vocab_size:
                raise UsageError(f"{where}: {theirs.get(name, name)} has shape {tuple(t.shape)}, expected "
                                 f"({c.vocab_size}, {shape[1]}) (or more rows of vocab padding)")
            padded = torch.zeros(shape, dtype=torch.float32)
            padded[:c.vocab_size] = t[:c.vocab_size]
            t = padded
        elif tuple(t.shape) != shape:
            raise UsageError(f"{where}: {theirs.get(name, name)} has shape {tuple(t.shape)}, expected {shape}",
                             "the weights do not fit the model their config describes")
        if not bool(torch.isfinite(t).all()):
            raise UsageError(f"{where}: {theirs.get(name, name)} holds NaN or infinite values")
        out[name] = _flip_if_qk(name, t, c) if flip else t.clone()
    return out
