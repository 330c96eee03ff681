"""The chat template: a conversation → token ids and a loss mask (1 = the model learns this token).

Layout (nanochat's): `<|bos|>`, then per turn `<|user_start|>text<|user_end|>` or
`<|assistant_start|>…<|assistant_end|>`; inside an assistant turn a calculator call is
`<|python_start|>expr<|python_end|>` (learned) and its result `<|output_start|>value<|output_end|>`
(not learned: the engine forces it at inference). A leading system message is merged into the first
user message with "\n\n", because the template has no system role (costs nothing for the 2-turn
tasks here). It does not sample or run tools; `model/engine.py` does that.
NOTE: written by helper `tasks` against the contract in HELPERS.md; if helper `tok` ships its own
`tokenizer/chat.py`, theirs wins at merge (same functions, same semantics).
"""

from __future__ import annotations

from typing import Any

DEFAULT_MAX_TOKENS = 2048


def _messages(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    messages = conversation["messages"]
    if not messages:
        raise ValueError("a conversation needs at least one message")
    if messages[0]["role"] == "system":
        if len(messages) < 2 or messages[1]["role"] != "user":
            raise ValueError("a system message must be followed by a user message")
        merged = {"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}
        messages = [merged] + list(messages[2:])
    for i, m in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if m["role"] != expected:
            raise ValueError(f"message {i} is from {m['role']!r}, expected {expected!r} (roles must alternate, "
                             "user first)")
    return messages


def render_conversation(tok, conversation: dict[str, Any], max_tokens: int | None = DEFAULT_MAX_TOKENS
                        ) -> tuple[list[int], list[int]]:
    """(ids, mask) of a whole conversation, cut to `max_tokens` (None = no cut)."""
    sid = tok.special_id
    ids: list[int] = [tok.bos_id]
    mask: list[int] = [0]

    def add(tokens: list[int] | int, m: int) -> None:
        tokens = [tokens] if isinstance(tokens, int) else tokens
        ids.extend(tokens)
        mask.extend([m] * len(tokens))

    for message in _messages(conversation):
        content = message["content"]
        if message["role"] == "user":
            if not isinstance(content, str):
                raise ValueError("user content must be a string")
            add(sid("<|user_start|>"), 0)
            add(tok.encode(content), 0)
            add(sid("<|user_end|>"), 0)
            continue
        add(sid("<|assistant_start|>"), 0)
        if isinstance(content, str):
            add(tok.encode(content), 1)
        else:
            for part in content:
                kind, text = part["type"], part["text"]
                if kind == "text":
                    add(tok.encode(text), 1)
                elif kind == "python":
                    add(sid("<|python_start|>"), 1)
                    add(tok.encode(text), 1)
                    add(sid("<|python_end|>"), 1)
                elif kind == "python_output":
                    add(sid("<|output_start|>"), 0)
                    add(tok.encode(text), 0)
                    add(sid("<|output_end|>"), 0)
                else:
                    raise ValueError(f"unknown assistant part type {kind!r}")
        add(sid("<|assistant_end|>"), 1)
    if max_tokens is not None:
        ids, mask = ids[:max_tokens], mask[:max_tokens]
    return ids, mask


def render_for_completion(tok, conversation: dict[str, Any]) -> list[int]:
    """Ids that prompt the model for the last assistant reply: the conversation without its last
    assistant message, ending with `<|assistant_start|>`."""
    messages = list(conversation["messages"])
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    ids, _ = render_conversation(tok, {"messages": messages}, max_tokens=None)
    return ids + [tok.special_id("<|assistant_start|>")]
