"""The chat template: a conversation → token ids and a loss mask (1 = the model is trained on this token).

Layout (nanochat's): `<|bos|>`, then per turn `<|user_start|>text<|user_end|>` or
`<|assistant_start|>…<|assistant_end|>`. Inside an assistant turn a calculator call is
`<|python_start|>expr<|python_end|>` (learned: the model must write it) and its result
`<|output_start|>value<|output_end|>` (mask 0: the engine forces it at inference, so learning to predict it
would only teach the model to hallucinate results). The template has no system role: a leading system message
is merged into the first user message with "\n\n" (what nanochat does; the cost is that the model cannot tell
instructions from the user's words). Works with any tokenizer that has `encode`, `special_id`, `bos_id` (the BPE
and the byte-level one). It does not sample or run tools; `model/engine.py` does that.
"""

from __future__ import annotations

from typing import Any

PART_TYPES = ("text", "python", "python_output")


def _check_content(content: Any, where: str, parts_allowed: bool) -> None:
    if isinstance(content, str):
        return
    if not parts_allowed or not isinstance(content, list):
        kind = "a string or a list of parts" if parts_allowed else "a string"
        raise ValueError(f"{where}: content must be {kind}, got {type(content).__name__}")
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in PART_TYPES or not isinstance(part.get("text"), str):
            raise ValueError(f"{where}, part {j}: expected {{'type': one of {', '.join(PART_TYPES)}, 'text': str}}, "
                             f"got {part!r:.80}")


def normalize_messages(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages with a leading system message merged into the first user one; ValueError (naming the message)
    when roles do not alternate user, assistant, user, … or content has the wrong shape."""
    if not isinstance(conversation, dict) or not isinstance(conversation.get("messages"), list):
        raise ValueError("a conversation is {'messages': [...]}")
    messages = list(conversation["messages"])
    if not messages:
        raise ValueError("a conversation needs at least one message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or "content" not in m:
            raise ValueError(f"message {i}: expected {{'role': system|user|assistant, 'content': ...}}, got {m!r:.80}")
    if messages[0]["role"] == "system":
        _check_content(messages[0]["content"], "message 0 (system)", parts_allowed=False)
        if len(messages) < 2 or messages[1]["role"] != "user":
            raise ValueError("message 0 (system) must be followed by a user message")
        _check_content(messages[1]["content"], "message 1 (user)", parts_allowed=False)
        merged = {"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}
        messages = [merged] + messages[2:]
        offset = 1  # report indices as the caller numbered them
    else:
        offset = 0
    for i, m in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        n = i + offset if i else 0
        if m["role"] != expected:
            raise ValueError(f"message {n} is from {m['role']!r}, expected {expected!r} "
                             "(after an optional system message, roles alternate user, assistant, …)")
        _check_content(m["content"], f"message {n} ({m['role']})", parts_allowed=m["role"] == "assistant")
    return messages


def render_conversation(tok, conversation: dict[str, Any], max_tokens: int | None = None
                        ) -> tuple[list[int], list[int]]:
    """(ids, mask) of a whole conversation, both cut to `max_tokens` (None = no cut). mask[i] = 1 exactly on
    assistant tokens: text, python calls with their delimiters, and `<|assistant_end|>`."""
    sid = tok.special_id
    ids: list[int] = []
    mask: list[int] = []

    def add(tokens: list[int], m: int) -> None:
        ids.extend(tokens)
        mask.extend([m] * len(tokens))

    add([tok.bos_id], 0)
    for message in normalize_messages(conversation):
        content = message["content"]
        if message["role"] == "user":
            add([sid("<|user_start|>"), *tok.encode(content), sid("<|user_end|>")], 0)
            continue
        add([sid("<|assistant_start|>")], 0)  # the prompt primes it; the model need not predict it
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            if part["type"] == "text":
                add(tok.encode(part["text"]), 1)
            elif part["type"] == "python":
                add([sid("<|python_start|>"), *tok.encode(part["text"]), sid("<|python_end|>")], 1)
            else:  # python_output: forced by the engine
                add([sid("<|output_start|>"), *tok.encode(part["text"]), sid("<|output_end|>")], 0)
        add([sid("<|assistant_end|>")], 1)
    if max_tokens is not None:
        ids, mask = ids[:max_tokens], mask[:max_tokens]
    return ids, mask


def render_for_completion(tok, conversation: dict[str, Any]) -> list[int]:
    """Ids that prompt the model for the next assistant reply: the conversation without its last assistant
    message (if it ends with one), then `<|assistant_start|>`. The rest must end with a user message."""
    messages = list(conversation.get("messages", [])) if isinstance(conversation, dict) else []
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    if not messages or messages[-1].get("role") != "user":
        raise ValueError("a completion prompt must end with a user message (optionally followed by the assistant "
                         "reply being replaced)")
    ids, _ = render_conversation(tok, {"messages": messages})
    return ids + [tok.special_id("<|assistant_start|>")]
