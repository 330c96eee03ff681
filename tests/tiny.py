"""The one tiny GPT the tests build: `tiny_gpt(...)` (shape by keyword, seeded, nanochat's init or, with
`spread`, every 2-D weight redrawn ~N(0, spread) so no path hides behind a zero projection and greedy output
is not one repeated token). Model, engine, compile, chat, eval and checkpoint tests all take it from here."""

from __future__ import annotations


def tiny_gpt(vocab_size: int = 300, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_kv_head: int | None = None,
             seq_len: int = 32, seed: int = 0, spread: float | None = None, all_params: bool = False):
    import torch

    from nanochat_cli.model.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                          n_kv_head=n_kv_head or n_head, seq_len=seq_len))
    model.init_weights()
    if spread is not None:
        with torch.no_grad():
            for p in model.parameters():
                if all_params or p.dim() == 2:
                    p.normal_(0, spread)
    return model


def byte_gpt(seq_len: int = 256, seed: int = 0, n_layer: int = 1, n_embd: int = 32, n_head: int = 2,
             n_kv_head: int | None = None, spread: float | None = None):
    """(tiny_gpt with the byte tokenizer's vocabulary, in eval mode, the byte tokenizer)."""
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    tok = ByteTokenizer()
    model = tiny_gpt(tok.vocab_size, n_layer, n_embd, n_head, n_kv_head, seq_len, seed, spread)
    return model.eval(), tok
