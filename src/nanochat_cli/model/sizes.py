"""Parameter counts and training FLOPs per token of our GPT from its shape alone, without torch: what
`speedrun --dry-run` and `doctor` estimate before any model exists. `GPT.param_counts`/`estimate_flops`
(model/gpt.py) count the real tensors of a built model; tests/model/test_sizes.py proves the two agree on
every profile, so the estimate cannot drift from the model.

Per block: q (d × H·hd), k and v (d × Hkv·hd each), the output projection (d × d) and the 4× MLP (8·d²), no
biases, parameter-free norms. The embedding and the untied lm_head are padded to a multiple of 64 rows.
FLOPs: 6 per matmul weight per token (2 forward + 4 backward) plus attention's QK^T and AV, 12·L·H·hd·T
(PaLM appendix B); the embedding is a lookup and costs none.
"""

from __future__ import annotations

PAD_VOCAB_TO = 64


def padded(vocab_size: int, multiple: int = PAD_VOCAB_TO) -> int:
    return -(-vocab_size // multiple) * multiple


def param_counts(vocab_size: int, n_layer: int, n_embd: int, n_head: int, n_kv_head: int,
                 pad_vocab_to: int = PAD_VOCAB_TO) -> dict[str, int]:
    """{"wte", "lm_head", "blocks", "total", "matmul"} — the groups GPT.param_counts reports."""
    head_dim = n_embd // n_head
    block = n_embd * (n_head * head_dim) + 2 * n_embd * (n_kv_head * head_dim) + n_embd * n_embd + 8 * n_embd * n_embd
    vocab = padded(vocab_size, pad_vocab_to)
    counts = {"wte": vocab * n_embd, "lm_head": vocab * n_embd, "blocks": n_layer * block}
    counts["total"] = sum(counts.values())
    counts["matmul"] = counts["blocks"] + counts["lm_head"]
    return counts


def flops_per_token(matmul_params: int, n_layer: int, n_head: int, head_dim: int, seq_len: int) -> int:
    """Training FLOPs per token (see the module docstring)."""
    return 6 * matmul_params + 12 * n_layer * n_head * head_dim * seq_len


def config_counts(cfg, vocab_size: int | None = None) -> dict[str, int]:
    """param_counts of the model `cfg` describes (vocab: `vocab_size`, else tokenizer.vocab_size)."""
    m = cfg.model
    return param_counts(vocab_size or cfg.tokenizer.vocab_size, m.depth, m.width, m.n_heads,
                        m.n_kv_heads or m.n_heads)


def config_flops_per_token(cfg) -> int:
    m = cfg.model
    return flops_per_token(config_counts(cfg)["matmul"], m.depth, m.n_heads, m.width // m.n_heads, m.seq_len)
