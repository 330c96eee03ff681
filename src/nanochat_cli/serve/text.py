"""Tokens → the text a client receives: whole characters only, stop strings cut and held back, tool calls.

A token can end inside a multi-byte character (byte-level BPE pieces), so each choice's bytes go through an
incremental UTF-8 decoder: a piece is sent once its characters are complete, and invalid bytes become U+FFFD
exactly where `tokenizer.decode` puts them, so the streamed pieces always join to the non-streamed text.
Text that could be the start of a stop string is held back until it is known not to be one.

Tool calls reach the client as the special tokens' own text, e.g.
`<|python_start|>6*7<|python_end|><|output_start|>42<|output_end|>` (ordinary text never encodes to special
tokens, so this is unambiguous); `assistant_content` parses that form back into the chat template's parts, so
a conversation sent back renders to the tokens the model actually produced.
"""

from __future__ import annotations

import codecs
from typing import Callable

PYTHON_START, PYTHON_END = "<|python_start|>", "<|python_end|>"
OUTPUT_START, OUTPUT_END = "<|output_start|>", "<|output_end|>"
_PARTS = {PYTHON_START: ("python", PYTHON_END), OUTPUT_START: ("python_output", OUTPUT_END)}


def token_bytes_of(tokenizer) -> Callable[[int], bytes]:
    """id → the bytes it stands for (a special token: its name). BPE tokenizers have `token_bytes`; the
    byte-level one's ids below 256 are the bytes themselves."""
    own = getattr(tokenizer, "token_bytes", None)
    cache: dict[int, bytes] = {}

    def lookup(token_id: int) -> bytes:
        b = cache.get(token_id)
        if b is None:
            if own is not None:
                b = own(token_id)
            elif token_id < 256:
                b = bytes([token_id])
            else:
                b = tokenizer.decode([token_id]).encode("utf-8")
            cache[token_id] = b
        return b

    return lookup


class TextStream:
    """One choice's text, token by token. `feed` returns what may be sent now; `stopped` turns true when a stop
    string appeared (the text before it was the last piece); `finish` returns whatever was held back."""

    def __init__(self, token_bytes: Callable[[int], bytes], stops: list[str] | None = None):
        self._bytes = token_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = [s for s in (stops or []) if s]
        self._held = ""
        self.stopped = False

    def feed(self, token_id: int) -> str:
        if self.stopped:
            return ""
        return self._release(self._held + self._utf8.decode(self._bytes(token_id)), final=False)

    def finish(self) -> str:
        if self.stopped:
            return ""
        return self._release(self._held + self._utf8.decode(b"", final=True), final=True)

    def _release(self, text: str, final: bool) -> str:
        self._held = ""
        if not self._stops:
            return text
        hits = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            return text[:min(hits)]
        if final:
            return text
        # Keep the longest tail that is the beginning of some stop string: the next token may complete it.
        keep = 0
        for s in self._stops:
            for k in range(min(len(s) - 1, len(text)), keep, -1):
                if text.endswith(s[:k]):
                    keep = k
                    break
        if keep:
            self._held = text[-keep:]
            return text[:-keep]
        return text


def assistant_content(text: str) -> str | list[dict]:
    """An assistant message's text → the chat template's content: the plain string, or parts when it holds
    tool calls written as above. An opening marker without its closing one stays text."""
    if PYTHON_START not in text and OUTPUT_START not in text:
        return text
    parts: list[dict] = []
    rest = text
    while rest:
        starts = [(rest.find(m), m) for m in _PARTS if rest.find(m) >= 0]
        if not starts:
            parts.append({"type": "text", "text": rest})
            break
        at, marker = min(starts)
        kind, closer = _PARTS[marker]
        end = rest.find(closer, at + len(marker))
        if end < 0:
            parts.append({"type": "text", "text": rest})
            break
        if at:
            parts.append({"type": "text", "text": rest[:at]})
        parts.append({"type": kind, "text": rest[at + len(marker):end]})
        rest = rest[end + len(closer):]
    return parts
