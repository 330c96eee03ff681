"""Packaged small talk: chitchat-dataset (7,168 two-person chats, MIT) turned into user/assistant turns.

Speakers alternate turn by turn, so the first speaker becomes the user and the second the assistant;
a trailing user turn is dropped (the assistant must speak last), conversations with fewer than two
turns (3,150 of them) are skipped, and long ones are cut to `max_turns` (the median chat has 2 turns,
the longest 564; a 256-token context would crop them anyway). Chats containing a word of wonderwords'
profanity list are left out (7 match a strong-profanity check). Every 20th kept chat is the test split
(~5%), so train and test never share a conversation. Informal, lower-case text: it teaches the chat
format and turn-taking, not knowledge.
"""

from __future__ import annotations

import functools
import re

from nanochat_cli.tasks.sources import chitchat_conversations, wonderwords_list
from nanochat_cli.tasks.task import Conversation, Task

TEST_EVERY = 20


@functools.lru_cache(maxsize=None)
def _kept(max_turns: int) -> tuple[tuple[str, ...], ...]:
    bad = {w.lower() for w in wonderwords_list("profanitylist") if " " not in w}
    word_re = re.compile(r"[a-z']+")
    out = []
    for turns in chitchat_conversations():
        turns = turns[:max_turns]
        if len(turns) % 2:
            turns = turns[:-1]
        if len(turns) < 2:
            continue
        if any(w in bad for t in turns for w in word_re.findall(t.lower())):
            continue
        out.append(turns)
    return tuple(out)


class ChitChat(Task):
    name = "chitchat"

    def __init__(self, split: str = "train", max_turns: int = 8, **kwargs):
        super().__init__(**kwargs)
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test, not {split!r}")
        kept = _kept(max_turns)
        self.split = split
        self.convs = [c for i, c in enumerate(kept) if (i % TEST_EVERY == TEST_EVERY - 1) == (split == "test")]

    def num_examples(self) -> int:
        return len(self.convs)

    def get_example(self, index: int) -> Conversation:
        turns = self.convs[index]
        return {"messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": t}
                             for i, t in enumerate(turns)]}
