"""Tokenizers: the BPE we train (tiktoken at run time), a byte-level one for tests and learn mode,
and the chat template that renders conversations to ids + a loss mask."""

from __future__ import annotations


def load_tokenizer(cfg):
    """The tokenizer a run uses: the trained BPE under <home>/tokenizer (PreflightError naming
    `nanochat tokenizer train` when missing, damaged or of another vocab size than the config asks for),
    or the byte-level tokenizer when `tokenizer.kind = "byte"`."""
    from nanochat_cli.errors import PreflightError
    from nanochat_cli.paths import Paths

    if cfg.tokenizer.kind == "byte":
        from nanochat_cli.tokenizer.byte_level import ByteTokenizer

        return ByteTokenizer()
    from nanochat_cli.tokenizer.bpe import BPETokenizer

    directory = Paths.of(cfg).tokenizer
    tok = BPETokenizer.from_dir(directory)
    if tok.vocab_size != cfg.tokenizer.vocab_size:
        raise PreflightError(f"the tokenizer in {directory} has {tok.vocab_size:,} tokens but tokenizer.vocab_size "
                             f"is {cfg.tokenizer.vocab_size:,}", "retrain it: `nanochat tokenizer train`")
    return tok


__all__ = ["load_tokenizer"]
