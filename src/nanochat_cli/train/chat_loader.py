"""Batches of conversations for mid and SFT, with the same contract as the base TokenLoader: an endless
iterator of (inputs, targets) int64 (B, T) tensors, ranks taking every world-th conversation, and
`state_dict()`/`load_state_dict()` so a restored loader yields exactly the batches that came next.

Mid (`PackedChatLoader`): rendered conversations are concatenated and cut into B·T+1-token windows;
every token is a target (conversations are split across rows, as base text is). SFT
(`PaddedChatLoader`): one conversation per row, cut to T+1 tokens, padded to T with
`<|assistant_end|>`, target -1 wherever the mask is 0 (user turns, tool outputs, padding). Padding
every row to T instead of to the batch's longest costs compute on short chats (SmolTalk at T=2048:
roughly half the tokens are padding) but keeps one shape, so a compiled model never recompiles.
A conversation left with no assistant token after the cut is skipped (deterministically, so resume
skips it too); a batch of only -1 targets would make the mean loss NaN.
"""

from __future__ import annotations

from collections import deque

from nanochat_cli.errors import NanochatError
from nanochat_cli.tokenizer.chat import render_conversation

MAX_CONVERSATION_TOKENS = 2048  # nanochat's cut for a single rendered conversation in mid


class _ChatLoader:
    def __init__(self, task, tokenizer, batch_size: int, seq_len: int, rank: int = 0, world_size: int = 1):
        if len(task) == 0:
            raise NanochatError(f"{task!r} has no conversations")
        self.task, self.tok = task, tokenizer
        self.B, self.T, self.rank, self.world = batch_size, seq_len, rank, world_size

    def _conversation(self, pos: int):
        """The conversation at position `pos` of this rank's stream (wraps around: epoch after epoch)."""
        return self.task[(self.rank + pos * self.world) % len(self.task)]

    def epoch(self, pos: int) -> int:
        return (self.rank + pos * self.world) // len(self.task)

    def __iter__(self):
        return self

    def close(self) -> None:
        pass


class PackedChatLoader(_ChatLoader):
    """Mid: conversations packed back to back into (B, T) rows, all tokens learned."""

    def __init__(self, task, tokenizer, batch_size: int, seq_len: int, rank: int = 0, world_size: int = 1,
                 max_conversation_tokens: int = MAX_CONVERSATION_TOKENS):
        super().__init__(task, tokenizer, batch_size, seq_len, rank, world_size)
        self.max_conv = max_conversation_tokens
        self.load_state_dict({"pos": 0, "offset": 0})

    def state_dict(self) -> dict:
        # The buffer is rebuilt from (first buffered conversation, tokens of it already used).
        return {"kind": "packed", "pos": self._pos, "offset": self._offset}

    def load_state_dict(self, state: dict) -> None:
        self._pos, self._offset = int(state["pos"]), int(state["offset"])
        self._next_pos = self._pos
        self._chunks: deque[list[int]] = deque()

    def __next__(self):
        import torch

        need = self.B * self.T + 1
        buf: list[int] = []
        while len(buf) < need:
            if not self._chunks:
                ids, _ = render_conversation(self.tok, self._conversation(self._next_pos), self.max_conv)
                self._chunks.append(ids)
                self._next_pos += 1
            chunk = self._chunks[0]
            take = min(need - len(buf), len(chunk) - self._offset)
            buf.extend(chunk[self._offset:self._offset + take])
            self._offset += take
            if self._offset == len(chunk):
                self._chunks.popleft()
                self._pos += 1
                self._offset = 0
        t = torch.tensor(buf, dtype=torch.long)
        return t[:-1].view(self.B, self.T), t[1:].view(self.B, self.T)


class PaddedChatLoader(_ChatLoader):
    """SFT: one conversation per row, padded, loss only where the chat template's mask is 1."""

    def __init__(self, task, tokenizer, batch_size: int, seq_len: int, rank: int = 0, world_size: int = 1):
        super().__init__(task, tokenizer, batch_size, seq_len, rank, world_size)
        self.pad_id = tokenizer.special_id("<|assistant_end|>")  # never a target: masked out below
        self._pos = 0

    def state_dict(self) -> dict:
        return {"kind": "padded", "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        self._pos = int(state["pos"])

    def __next__(self):
        import torch

        inputs = torch.full((self.B, self.T), self.pad_id, dtype=torch.long)
        targets = torch.full((self.B, self.T), -1, dtype=torch.long)
        row, skipped = 0, 0
        while row < self.B:
            ids, mask = render_conversation(self.tok, self._conversation(self._pos), self.T + 1)
            self._pos += 1
            if not any(mask[1:]):
                skipped += 1
                if skipped > len(self.task):
                    raise NanochatError(f"no conversation of {self.task!r} has an assistant token within "
                                        f"{self.T} tokens", "raise model.seq_len")
                continue
            n = len(ids) - 1
            x = torch.tensor(ids, dtype=torch.long)
            y = x[1:].clone()
            y[torch.tensor(mask[1:], dtype=torch.bool).logical_not()] = -1
            inputs[row, :n] = x[:-1]
            targets[row, :n] = y
            row += 1
        return inputs, targets


def estimate_tokens_per_conversation(task, tokenizer, max_tokens: int = MAX_CONVERSATION_TOKENS,
                                     samples: int = 1000) -> float:
    """Mean rendered length over up to `samples` evenly spaced conversations (what one epoch costs)."""
    n = len(task)
    idx = range(n) if n <= samples else [i * n // samples for i in range(samples)]
    lengths = [len(render_conversation(tokenizer, task[i], max_tokens)[0]) for i in idx]
    return sum(lengths) / max(1, len(lengths))
