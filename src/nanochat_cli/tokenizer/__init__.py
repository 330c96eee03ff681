"""Tokenizers: the BPE we train (tiktoken at run time), stored as versions that are never overwritten
(store.py), a byte-level one for tests and learn mode, and the chat template that renders conversations to
ids + a loss mask.

Callers get a tokenizer with `load_tokenizer(cfg)` (the default version, for new runs) or
`load_tokenizer(cfg, fingerprint)` (exactly the version a checkpoint was trained with), and compare a
checkpoint's recorded fingerprint with `tokenizer_matches`, never with `==`: checkpoints written before
versioning recorded sha256 of the ranks file, which is not the version's fingerprint.
"""

from __future__ import annotations

from nanochat_cli.tokenizer.store import TokenizerVersion


def load_tokenizer(cfg, fingerprint: str | None = None, *, used_by: str | None = None, any_vocab: bool = False):
    """The tokenizer a run uses.

    `tokenizer.kind = "byte"`: the byte-level tokenizer (no files). Otherwise, with `fingerprint` None: the
    default version (PreflightError naming `nanochat tokenizer train` when there is none, or when its vocab
    size is not cfg.tokenizer.vocab_size). With `fingerprint` (a version's fingerprint, or the ranks sha256 a
    checkpoint of an earlier release recorded): exactly that version, whatever cfg.tokenizer.vocab_size says,
    or PreflightError naming what is missing; `used_by` names who needs it in that message ("the base
    checkpoint runs/x/…"). `any_vocab`: the default whatever its size (tokenizer eval compares, it does not
    train). A damaged version is a PreflightError naming the file, never a traceback.
    A pre-versions <home>/tokenizer is migrated first (tokenizer/legacy.py)."""
    from nanochat_cli.errors import PreflightError
    from nanochat_cli.paths import Paths
    from nanochat_cli.tokenizer import store
    from nanochat_cli.tokenizer.legacy import legacy_problem, migrate_legacy

    if cfg.tokenizer.kind == "byte":
        from nanochat_cli.tokenizer.byte_level import ByteTokenizer

        return ByteTokenizer()
    paths = Paths.of(cfg)
    migrate_legacy(paths)
    if fingerprint is not None:
        directory = store.find_version(paths, fingerprint)
        if directory is None:
            raise PreflightError(
                f"the tokenizer {str(fingerprint)[:12]} that {used_by or 'this checkpoint'} was trained with is "
                f"not in {paths.tokenizers}",
                "restore that tokenizer's directory from a backup into tokenizers/ (or the <home>/tokenizer of "
                "the release that trained it, which is migrated on first use); `nanochat tokenizer list` shows "
                "what is there")
        return store.load_version(directory)
    tok = store.load_version(store.default_dir(paths, legacy_problem(paths)))
    if not any_vocab and tok.vocab_size != cfg.tokenizer.vocab_size:
        raise PreflightError(f"the default tokenizer {tok.fingerprint[:12]} has {tok.vocab_size:,} tokens but "
                             f"tokenizer.vocab_size is {cfg.tokenizer.vocab_size:,}",
                             "train one of that size: `nanochat tokenizer train` (or `nanochat tokenizer use` "
                             "one from `nanochat tokenizer list`)")
    return tok


def list_tokenizers(paths) -> list[TokenizerVersion]:
    """Every stored version (store.list_versions), after migrating a pre-versions home."""
    from nanochat_cli.tokenizer import store
    from nanochat_cli.tokenizer.legacy import migrate_legacy

    migrate_legacy(paths)
    return store.list_versions(paths)


def use_tokenizer(paths, prefix: str):
    """`nanochat tokenizer use`: make the version `prefix` names the default (store.use_version), after
    migrating a pre-versions home."""
    from nanochat_cli.tokenizer import store
    from nanochat_cli.tokenizer.legacy import migrate_legacy

    migrate_legacy(paths)
    return store.use_version(paths, prefix)


def load_recorded_tokenizer(cfg, recorded: dict | None, where: str | None = None):
    """The tokenizer a checkpoint was trained with, from its meta.json "tokenizer" record (kind, vocab_size,
    fingerprint): `recorded` None (a fresh base run) = the default version; kind "byte" = the byte-level one;
    otherwise exactly the recorded version (`load_tokenizer(cfg, fingerprint, used_by=where)`), so a model is
    only ever run or trained further with its own tokenizer, whatever the default is now. A BPE record without
    a fingerprint (never written by this project) falls back to the default of the recorded vocab size."""
    if not recorded:
        return load_tokenizer(cfg)
    tok_cfg = cfg.model_copy(deep=True)
    tok_cfg.tokenizer.kind = "byte" if recorded.get("kind") == "byte" else "bpe"
    if isinstance(recorded.get("vocab_size"), int):
        tok_cfg.tokenizer.vocab_size = recorded["vocab_size"]
    fingerprint = recorded.get("fingerprint")
    return load_tokenizer(tok_cfg, fingerprint if isinstance(fingerprint, str) else None, used_by=where)


def tokenizer_matches(tokenizer, fingerprint: str | None) -> bool:
    """Whether `tokenizer` is the one a checkpoint recorded as `fingerprint`: its version fingerprint, or the
    sha256 of its ranks file (what releases before versioning recorded). None (what byte-level runs record)
    matches only a tokenizer without a fingerprint."""
    own = getattr(tokenizer, "fingerprint", None)
    if fingerprint is None:
        return own is None
    return fingerprint in (own, getattr(tokenizer, "ranks_sha256", None))


__all__ = ["TokenizerVersion", "list_tokenizers", "load_recorded_tokenizer", "load_tokenizer", "tokenizer_matches",
           "use_tokenizer"]
