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


def load_recorded_tokenizer(cfg, recorded: dict | None, where: str | None = None):
    """The tokenizer a checkpoint was trained with, from its meta.json "tokenizer" record (kind, vocab_size,
    fingerprint): a model is only ever run or trained further with its own tokenizer. `recorded` None (a
    fresh base run) = the default tokenizer. PreflightError naming the checkpoint when it is not at hand."""
    from nanochat_cli.errors import PreflightError

    if not recorded:
        return load_tokenizer(cfg)
    if recorded.get("kind") == "byte":
        from nanochat_cli.tokenizer.byte_level import ByteTokenizer

        return ByteTokenizer()
    tok_cfg = cfg.model_copy(deep=True)
    tok_cfg.tokenizer.kind = "bpe"
    if isinstance(recorded.get("vocab_size"), int):
        tok_cfg.tokenizer.vocab_size = recorded["vocab_size"]
    fp = recorded.get("fingerprint")
    missing = PreflightError(f"the tokenizer {str(fp)[:12]} that {where or 'this checkpoint'} was trained with is "
                             "not in this home", "restore that tokenizer (its sha256 is in the checkpoint's meta.json)")
    try:
        tok = load_tokenizer(tok_cfg)
    except PreflightError:
        if fp:
            raise missing from None
        raise
    if fp and getattr(tok, "fingerprint", None) != fp:
        raise missing
    return tok


__all__ = ["load_tokenizer", "load_recorded_tokenizer"]
