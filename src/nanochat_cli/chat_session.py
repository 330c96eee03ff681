"""Talking to a checkpoint: one-shot replies and the interactive session behind `nanochat chat`.

-i base does plain completion (BOS + prompt, continue); mid/sft render the conversation with the chat
template and sample the assistant's reply, streaming each token as it is decoded. The history is kept
as messages, so `/clear` starts over and the context grows turn by turn up to the model's length; then the
oldest turns are forgotten (with a note on stderr). A message that alone does not fit is refused, not cut:
cutting from the left would silently answer a different question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nanochat_cli.errors import UsageError
from nanochat_cli.model.engine import Engine, GenerationConfig

HELP = "Type a message. /clear forgets the conversation, /exit (or Ctrl-D) leaves."


@dataclass
class Turn:
    """A message ready to answer: the prompt ids and the history they render (oldest turns dropped if needed)."""

    ids: list[int]
    messages: list[dict]
    dropped: int = 0


class ChatSession:
    def __init__(self, loaded, gen: GenerationConfig):
        self.loaded = loaded
        self.engine = Engine(loaded.model, loaded.tokenizer)
        self.gen = gen
        self.messages: list[dict] = []
        self.stopped_at_context = False  # the last reply ended because the context was full

    @property
    def seq_len(self) -> int:
        return self.loaded.model.config.seq_len

    @property
    def prompt_limit(self) -> int:
        # Room kept for the reply: max_tokens, but at most a quarter of the context, so a long history is
        # trimmed to leave a reply room while a long message on a small model (256 tokens) is still allowed.
        return self.seq_len - min(self.gen.max_tokens, self.seq_len // 4)

    def clear(self) -> None:
        self.messages = []

    def prepare(self, text: str) -> Turn:
        """The ids for answering `text`, or UsageError when `text` alone does not fit the context. Nothing is
        committed to the history here: a refused or interrupted turn leaves it exactly as it was."""
        tok, limit = self.loaded.tokenizer, self.prompt_limit
        # Bytes that are not UTF-8 (a terminal or file in another encoding) reach Python as lone surrogates,
        # which no tokenizer can encode: turn them back into bytes and each bad one into U+FFFD.
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if self.loaded.phase == "base":
            ids, messages = tok.encode(text, prepend=tok.bos_id), []
        else:
            from nanochat_cli.tokenizer.chat import render_for_completion

            messages = self.messages + [{"role": "user", "content": text}]
            ids = render_for_completion(tok, {"messages": messages})
        dropped = 0
        while len(ids) > limit and len(messages) > 1:  # forget the oldest turns (user + assistant) first
            messages, dropped = messages[2:], dropped + 1
            ids = render_for_completion(tok, {"messages": messages})
        if len(ids) > limit:
            # Refuse rather than cut: cutting from the left would answer a question the user did not ask.
            what = "prompt" if self.loaded.phase == "base" else "message"
            raise UsageError(f"the {what} is {len(ids)} tokens; this model reads {self.seq_len} tokens at most and "
                             f"keeps {self.seq_len - limit} of them for the reply",
                             f"shorten it to at most {limit} tokens, or lower --max-tokens to keep less room "
                             "for the reply")
        return Turn(ids, messages, dropped)

    def reply(self, text: str, on_text: Callable[[str], None] | None = None) -> str:
        """Generate the reply to `text`, calling `on_text` with each newly decoded piece (streaming)."""
        return self.respond(self.prepare(text), on_text)

    def respond(self, turn: Turn, on_text: Callable[[str], None] | None = None) -> str:
        """Generate the reply to a prepared turn; the history takes the turn only once the reply is complete,
        so Ctrl-C mid-reply cannot leave an unanswered user message (the chat template needs alternation)."""
        tok = self.loaded.tokenizer
        out: list[int] = []
        shown = ""
        stopped = False
        self.stopped_at_context = False
        for step in self.engine.generate(turn.ids, 1, self.gen):
            t = step[0]
            if t in self.engine.stop_ids:
                stopped = True
                break
            out.append(t)
            text_so_far = tok.decode(out)
            # a multi-byte character arrives over several tokens: print only once it has decoded whole
            if not text_so_far.endswith("\ufffd") and on_text is not None:
                on_text(text_so_far[len(shown):])
                shown = text_so_far
        answer = tok.decode(out)
        if on_text is not None and len(answer) > len(shown):
            on_text(answer[len(shown):])
        # The engine stops at the context's end without a word; say so (max_tokens is a limit the user chose).
        self.stopped_at_context = not stopped and len(out) < self.gen.max_tokens
        if self.loaded.phase != "base":
            self.messages = turn.messages + [{"role": "assistant", "content": answer}]
        return answer

    def notices(self, turn: Turn | None = None) -> list[str]:
        """Lines for stderr about what the context forced: forgotten turns (before a reply), a cut reply (after)."""
        if turn is not None:
            return [f"note: forgot the {turn.dropped} oldest turn(s) of this conversation to fit the model's "
                    f"{self.seq_len}-token context"] if turn.dropped else []
        if self.stopped_at_context:
            return [f"note: the reply stopped at the end of the model's {self.seq_len}-token context"
                    + ("" if self.loaded.phase == "base" else "; /clear starts a new conversation")]
        return []


def interactive(session: ChatSession, read: Callable[[str], str], write: Callable[[str], None],
                notify: Callable[[str], None]) -> None:
    """The REPL: `read(prompt)` raises EOFError on Ctrl-D; Ctrl-C during a reply stops that reply only.
    `notify` takes one line for stderr: a message that does not fit is refused there and the session goes on."""
    write(HELP + "\n")
    while True:
        try:
            line = read("you> ")
        except EOFError:
            write("\n")
            return
        except KeyboardInterrupt:
            write("\n")
            return
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return
        if text == "/clear":
            session.clear()
            write("(conversation cleared)\n")
            continue
        try:
            turn = session.prepare(text)
        except UsageError as e:
            notify(f"not sent: {e.one_line()}")  # the session, and its history, go on as before
            continue
        for line in session.notices(turn):
            notify(line)
        write("model> ")
        try:
            session.respond(turn, on_text=write)
        except KeyboardInterrupt:
            write(" [stopped]")
        write("\n")
        for line in session.notices():
            notify(line)
