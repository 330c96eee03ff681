"""Byte-level BPE: trained with HF `tokenizers` (Rust, parallel), run with `tiktoken` (Rust, GIL released).

Training splits text with the GPT-4 pattern (numbers in groups of 1–2, as nanochat does, so "2025" is two tokens
and arithmetic sees digits in small groups), maps bytes to the 256-symbol byte alphabet (so every string encodes;
no unknown token) and learns merges. We keep only the merge *order*: rank i < 256 is byte i, rank 256+k is the
k-th merge, written as a tiktoken file (one `base64(token) rank` line per token) with the 9 special tokens after
the last rank. The cost of re-ranking: our ids differ from HF's, and tiktoken merges by the rank of the merged
bytes rather than by the merge list, which can split a rare word differently than HF would — still a valid,
lossless encoding (nanochat makes the same trade with its own trainer). It does not normalise text (no NFC, no
lower-casing) and never parses special tokens out of ordinary text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence

from nanochat_cli.errors import UsageError
from nanochat_cli.tokenizer.special import SPECIAL_TOKENS

# GPT-4's (cl100k) split pattern with \p{N}{1,3} narrowed to \p{N}{1,2} (nanochat's choice for small vocabs).
SPLIT_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|"""
                 r"""\s*[\r\n]|\s+(?!\S)|\s+""")
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)


def byte_alphabet() -> dict[str, int]:
    """The byte-level alphabet (printable char → byte): printable Latin-1 bytes stand for themselves, the other 68
    bytes get the code points 256, 257, … in byte order, so no byte maps to whitespace or a control character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def train_ranks(texts: Iterable[str], vocab_size: int) -> dict[bytes, int]:
    """Learn `vocab_size - 9` mergeable ranks (256 bytes + merges) from `texts`."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    if vocab_size < MIN_VOCAB:
        raise UsageError(f"tokenizer.vocab_size {vocab_size} is smaller than 256 bytes + {len(SPECIAL_TOKENS)} "
                         f"special tokens = {MIN_VOCAB}", f"set tokenizer.vocab_size to at least {MIN_VOCAB}")
    hf = Tokenizer(models.BPE(unk_token=None, fuse_unk=False))
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    n_ranks = vocab_size - len(SPECIAL_TOKENS)
    trainer = trainers.BpeTrainer(vocab_size=n_ranks, min_frequency=0, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    hf.train_from_iterator(texts, trainer)
    merges = json.loads(hf.to_str())["model"]["merges"]
    alphabet = byte_alphabet()

    def to_bytes(symbol: str) -> bytes:
        return bytes(alphabet[c] for c in symbol)

    ranks = {bytes([b]): b for b in range(256)}
    for merge in merges:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        token = to_bytes(left) + to_bytes(right)
        if token not in ranks:
            ranks[token] = len(ranks)
    return ranks


def ranks_to_file_bytes(ranks: dict[bytes, int]) -> bytes:
    """tiktoken's file format: one `base64(token) rank` line per token, in rank order."""
    lines = (f"{base64.b64encode(tok).decode('ascii')} {rank}" for tok, rank in sorted(ranks.items(),
                                                                                        key=lambda kv: kv[1]))
    return ("\n".join(lines) + "\n").encode("ascii")


def parse_ranks(data: bytes) -> dict[bytes, int]:
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


class BPETokenizer:
    """Our trained BPE at run time: a `tiktoken.Encoding` plus the special-token ids and two identities:
    `fingerprint` (the version, fingerprint.fingerprint_of) and `ranks_sha256` (sha256 of the ranks file, which
    checkpoints of releases before versioning stored as their fingerprint; see `tokenizer_matches`)."""

    kind = "bpe"

    def __init__(self, ranks: dict[bytes, int], fingerprint: str | None = None, pattern: str = SPLIT_PATTERN,
                 meta: dict | None = None, ranks_sha256: str | None = None):
        import tiktoken

        n = len(ranks)
        self._special = {name: n + i for i, name in enumerate(SPECIAL_TOKENS)}
        self._enc = tiktoken.Encoding(name="nanochat-bpe", pat_str=pattern, mergeable_ranks=ranks,
                                      special_tokens=self._special)
        if ranks_sha256 is None or fingerprint is None:  # built in memory (tests, bench): derive both
            from nanochat_cli.tokenizer.fingerprint import new_meta

            derived = new_meta(ranks_to_file_bytes(ranks), n, pattern, {})
            ranks_sha256 = ranks_sha256 or derived["ranks_sha256"]
            fingerprint = fingerprint or derived["fingerprint"]
        self.fingerprint = fingerprint
        self.ranks_sha256 = ranks_sha256
        self.pattern = pattern
        self.meta = meta or {}

    @property
    def vocab_size(self) -> int:
        return self._enc.n_vocab

    @property
    def bos_id(self) -> int:
        return self._special["<|bos|>"]

    def special_id(self, name: str) -> int:
        return self._special[name]

    @property
    def encoding(self):
        """The underlying `tiktoken.Encoding` (for comparisons and benchmarks)."""
        return self._enc

    def _prefix(self, prepend: int | str | None) -> list[int]:
        if prepend is None:
            return []
        return [self._special[prepend] if isinstance(prepend, str) else int(prepend)]

    def encode(self, text: str, prepend: int | str | None = None) -> list[int]:
        return self._prefix(prepend) + self._enc.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str], prepend: int | str | None = None,
                     num_threads: int = 8) -> list[list[int]]:
        out = self._enc.encode_ordinary_batch(list(texts), num_threads=num_threads)
        pre = self._prefix(prepend)
        return [pre + ids for ids in out] if pre else out

    def decode(self, ids: Sequence[int]) -> str:
        return self._enc.decode(list(ids))

    def token_bytes(self, token_id: int) -> bytes:
        return self._enc.decode_single_token_bytes(token_id)
