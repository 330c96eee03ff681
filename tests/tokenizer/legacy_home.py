"""A home as the release before tokenizer versions left it: <home>/tokenizer/{tokenizer.tiktoken, tokenizer.json,
eval.json}. `write_legacy_tokenizer` writes the files exactly as that release's `bpe.save_tokenizer` did
(commit 8361d5a, src/nanochat_cli/tokenizer/bpe.py), so the migration is tested against the real old layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

from nanochat_cli.paths import atomic_write_bytes, atomic_write_json
from nanochat_cli.tokenizer.bpe import SPLIT_PATTERN, ranks_to_file_bytes, train_ranks
from nanochat_cli.tokenizer.special import SPECIAL_TOKENS

TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "and darkness was upon the face of the deep. 12 + 34 = 46; it's 2026.\n") * 40
# Enough distinct words for a few hundred merges: "abc acf ..." (letter triples in a fixed order).
WORDS = " ".join(chr(97 + i % 26) + chr(97 + i * 7 % 26) + chr(97 + i * 11 % 23) for i in range(3000))


def small_ranks(vocab_size: int = 400) -> dict[bytes, int]:
    ranks = train_ranks([TEXT, WORDS], vocab_size)
    assert len(ranks) == vocab_size - len(SPECIAL_TOKENS)
    return ranks


def write_legacy_tokenizer(home: Path, ranks: dict[bytes, int], meta: dict | None = None,
                           eval_report: dict | None = None) -> str:
    """Returns the sha256 of the ranks file: the fingerprint that release's checkpoints recorded."""
    directory = Path(home) / "tokenizer"
    data = ranks_to_file_bytes(ranks)
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(directory / "tokenizer.tiktoken", data)
    atomic_write_json(directory / "tokenizer.json", {
        **(meta or {"train_chars": 400_000, "train_docs": 119, "seconds": 0.4, "doc_cap": 10_000,
                    "shards": ["shard_00000.parquet", "shard_00001.parquet"], "source": "embedded"}),
        "sha256": digest, "pattern": SPLIT_PATTERN, "vocab_size": len(ranks) + len(SPECIAL_TOKENS),
        "special_tokens": {n: len(ranks) + i for i, n in enumerate(SPECIAL_TOKENS)}})
    if eval_report is not None:  # what that release's `tokenizer eval` saved beside it
        atomic_write_json(directory / "eval.json", {**eval_report, "fingerprint": digest})
    return digest
