"""A chat with a trained model: the conversation history, prompt rendering and streamed replies.

`ChatSession.reply(text)` yields the reply as text pieces while the engine generates it (tokens are
decoded incrementally; a piece is held back while it ends in an incomplete UTF-8 sequence, at most a
few tokens). Chat sources (mid, sft) render the history with the chat template and stop at
assistant_end; `base` does plain completion of the text (no history, stops at bos or max_tokens).
History is kept as nanochat conversations and trimmed from the oldest turn when it would not fit the
model's context. It does not print: the CLI decides where text goes.
"""

from __future__ import annotations

from typing import Iterator


class ChatSession:
    def __init__(self, engine, tokenizer, source: str, temperature: float = 0.6, top_k: int | None = 50,
                 max_tokens: int = 512, seed: int = 42, context: int | None = None):
        self.engine, self.tokenizer, self.source = engine, tokenizer, source
        self.temperature, self.top_k, self.max_tokens, self.seed = temperature, top_k or None, max_tokens, seed
        self.context = context or engine.model.config.seq_len
        self.messages: list[dict] = []
        self.turns = 0

    def clear(self) -> None:
        self.messages = []

    def _prompt_ids(self, text: str) -> list[int]:
        tok = self.tokenizer
        if self.source == "base":
            return tok.encode(text, prepend=tok.bos_id)[-self.context:]
        from nanochat_cli.tokenizer.chat import render_for_completion

        self.messages.append({"role": "user", "content": text})
        while True:
            ids = render_for_completion(tok, {"messages": self.messages})
            # Leave room for a reply; drop the oldest user/assistant pair when the history is too long.
            if len(ids) + min(self.max_tokens, 64) <= self.context or len(self.messages) <= 1:
                return ids[-self.context:]
            self.messages = self.messages[2:]

    def reply(self, text: str) -> Iterator[str]:
        """Stream the model's answer to `text`; the full reply is added to the history at the end."""
        tok = self.tokenizer
        ids = self._prompt_ids(text)
        out: list[int] = []
        shown = ""
        seed = self.seed + self.turns  # a fresh but reproducible draw each turn
        self.turns += 1
        for column, _ in self.engine.generate(ids, 1, max_tokens=self.max_tokens, temperature=self.temperature,
                                              top_k=self.top_k, seed=seed):
            t = column[0]
            if t in (self.engine.assistant_end, self.engine.bos):
                break
            out.append(t)
            full = tok.decode(out)
            if full.endswith("\ufffd"):
                continue  # an incomplete UTF-8 sequence: wait for the next byte
            yield full[len(shown):]
            shown = full
        full = tok.decode(out)
        if len(full) > len(shown):
            yield full[len(shown):]
        if self.source != "base":
            self.messages.append({"role": "assistant", "content": full})

    def ask(self, text: str) -> str:
        return "".join(self.reply(text))


def open_session(cfg, source: str, step: int | None = None) -> ChatSession:
    """Load the checkpoint of `source` (UsageError naming `nanochat train <source>` when missing)."""
    import os

    import torch

    from nanochat_cli.model.engine import Engine
    from nanochat_cli.model.inference import load_for_inference

    torch.set_num_threads(cfg.train.threads or max(1, min(8, os.cpu_count() or 1)))
    loaded = load_for_inference(cfg, source, step)
    engine = Engine(loaded.model, loaded.tokenizer)
    session = ChatSession(engine, loaded.tokenizer, source, temperature=cfg.chat.temperature, top_k=cfg.chat.top_k,
                          max_tokens=cfg.chat.max_tokens, seed=cfg.train.seed)
    session.loaded = loaded
    return session
