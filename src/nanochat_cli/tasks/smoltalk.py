"""SmolTalk (`HuggingFaceTB/smol-smoltalk`, default config): general chat, 460,341 train / 24,229 test.

Messages are used as they are; each row is checked on read (optional leading system message, then
strictly alternating user/assistant string turns, at least two), because a malformed row would
otherwise surface as a wrong loss mask far from its cause. Not scored: it is training/val data only.
"""

from __future__ import annotations

from typing import Any

from nanochat_cli.tasks import sources
from nanochat_cli.tasks.task import Conversation, RowTask

REPO = "HuggingFaceTB/smol-smoltalk"


def check_messages(messages: list[dict[str, Any]]) -> None:
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if len(body) < 2:
        raise ValueError("a SmolTalk conversation needs at least a user and an assistant message")
    for i, m in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected or not isinstance(m["content"], str):
            raise ValueError(f"SmolTalk message {i} is {m['role']!r}, expected a {expected!r} string turn")


class SmolTalk(RowTask):
    name = "smoltalk"

    @classmethod
    def from_hub(cls, cfg, split: str, **kwargs) -> "SmolTalk":
        return cls(sources.load_rows(cfg, REPO, None, split), **kwargs)

    def row_to_conversation(self, row: dict[str, Any]) -> Conversation:
        messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        check_messages(messages)
        return {"messages": messages}
