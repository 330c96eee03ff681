"""A byte-level tokenizer (256 byte ids + the special tokens): no training, no files.

Used by learn mode and by tests that must not depend on a trained BPE. It has the same interface as
the BPE tokenizer: `encode`, `decode`, `encode_batch`, `bos_id`, `vocab_size`, `special_id`.
"""

from __future__ import annotations

from nanochat_cli.tokenizer.special import SPECIAL_TOKENS


class ByteTokenizer:
    kind = "byte"
    fingerprint = None  # nothing on disk to identify; checkpoints record None (see tokenizer_matches)

    def __init__(self) -> None:
        self._special = {name: 256 + i for i, name in enumerate(SPECIAL_TOKENS)}
        self._special_by_id = {v: k for k, v in self._special.items()}

    @property
    def vocab_size(self) -> int:
        return 256 + len(SPECIAL_TOKENS)

    @property
    def bos_id(self) -> int:
        return self._special["<|bos|>"]

    def special_id(self, name: str) -> int:
        return self._special[name]

    def encode(self, text: str, prepend: int | None = None) -> list[int]:
        ids = list(text.encode("utf-8"))
        return ([prepend] if prepend is not None else []) + ids

    def encode_batch(self, texts: list[str], prepend: int | None = None) -> list[list[int]]:
        return [self.encode(t, prepend) for t in texts]

    def decode(self, ids: list[int]) -> str:
        out, buf = [], bytearray()
        for i in ids:
            if i < 256:
                buf.append(i)
            else:
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                out.append(self._special_by_id.get(i, ""))
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)
