"""A tokenizer version's identity: its metadata and fingerprint (the definition is in store.py's header).

Pure functions of the ranks bytes, the split pattern and the special tokens, kept apart from the store so the
tokenizer class (bpe.py) can fingerprint a tokenizer built in memory without importing the store that builds
tokenizers from disk."""

from __future__ import annotations

import hashlib
import json
import time

from nanochat_cli.tokenizer.special import SPECIAL_TOKENS

FORMAT = 2  # 1 was the single <home>/tokenizer/ directory (tokenizer/legacy.py)
FINGERPRINT_FIELDS = ("kind", "pattern", "ranks_sha256", "special_tokens")


def fingerprint_of(meta: dict) -> str:
    """The fingerprint of a version from its metadata (the four FINGERPRINT_FIELDS; see the module header)."""
    canonical = json.dumps({k: meta[k] for k in FINGERPRINT_FIELDS}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def special_ids(n_ranks: int) -> dict[str, int]:
    """nanochat's special tokens take the ids right after the last rank, in SPECIAL_TOKENS order."""
    return {name: n_ranks + i for i, name in enumerate(SPECIAL_TOKENS)}


def new_meta(data: bytes, n_ranks: int, pattern: str, extra: dict) -> dict:
    """The tokenizer.json of a version whose ranks file is `data` (training statistics etc. in `extra`)."""
    meta = {**extra, "format": FORMAT, "kind": "bpe", "pattern": pattern, "special_tokens": special_ids(n_ranks),
            "ranks_sha256": hashlib.sha256(data).hexdigest(), "vocab_size": n_ranks + len(SPECIAL_TOKENS)}
    meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    meta["fingerprint"] = fingerprint_of(meta)
    return meta
