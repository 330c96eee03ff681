"""Talking to a checkpoint: one-shot replies and the interactive session behind `nanochat chat`.

-i base does plain completion (BOS + prompt, continue); mid/sft render the conversation with the chat
template and sample the assistant's reply, streaming each token as it is decoded. The history is kept
as messages, so `/clear` starts over and the context grows turn by turn up to the model's length.
"""

from __future__ import annotations

from typing import Callable

from nanochat_cli.model.engine import Engine, GenerationConfig

HELP = "Type a message. /clear forgets the conversation, /exit (or Ctrl-D) leaves."


class ChatSession:
    def __init__(self, loaded, gen: GenerationConfig):
        self.loaded = loaded
        self.engine = Engine(loaded.model, loaded.tokenizer)
        self.gen = gen
        self.messages: list[dict] = []

    def clear(self) -> None:
        self.messages = []

    def _prompt_ids(self, text: str) -> list[int]:
        tok = self.loaded.tokenizer
        if self.loaded.phase == "base":
            return tok.encode(text, prepend=tok.bos_id)
        from nanochat_cli.tokenizer.chat import render_for_completion

        self.messages.append({"role": "user", "content": text})
        ids = render_for_completion(tok, {"messages": self.messages})
        limit = self.loaded.model.config.seq_len - 16
        while len(ids) > limit and len(self.messages) > 1:  # forget the oldest turns that no longer fit
            self.messages = self.messages[2:] if len(self.messages) > 2 else self.messages[-1:]
            ids = render_for_completion(tok, {"messages": self.messages})
        return ids[-limit:]

    def reply(self, text: str, on_text: Callable[[str], None] | None = None) -> str:
        """Generate the reply to `text`, calling `on_text` with each newly decoded piece (streaming)."""
        n_before = len(self.messages)
        try:
            return self._reply(text, on_text)
        except BaseException:
            # Ctrl-C mid-reply: drop the unanswered user turn, or the next turn would break the
            # user/assistant alternation the chat template requires.
            del self.messages[n_before:]
            raise

    def _reply(self, text: str, on_text: Callable[[str], None] | None) -> str:
        tok = self.loaded.tokenizer
        ids = self._prompt_ids(text)
        out: list[int] = []
        shown = ""
        for step in self.engine.generate(ids, 1, self.gen):
            t = step[0]
            if t in self.engine.stop_ids:
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
        if self.loaded.phase != "base":
            self.messages.append({"role": "assistant", "content": answer})
        return answer


def interactive(session: ChatSession, read: Callable[[str], str], write: Callable[[str], None]) -> None:
    """The REPL: `read(prompt)` raises EOFError on Ctrl-D; Ctrl-C during a reply stops that reply only."""
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
        write("model> ")
        try:
            session.reply(text, on_text=write)
        except KeyboardInterrupt:
            write(" [stopped]")
        write("\n")
