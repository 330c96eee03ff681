"""nanochat's special tokens, in id order after the regular vocabulary.

A conversation is `<|bos|>` then turns: `<|user_start|>…<|user_end|>`, `<|assistant_start|>…<|assistant_end|>`;
inside an assistant turn a calculator call is `<|python_start|>expr<|python_end|>` and its result
`<|output_start|>value<|output_end|>` (the result is forced by the engine, so it carries no loss).
"""

SPECIAL_TOKENS = (
    "<|bos|>",
    "<|user_start|>", "<|user_end|>",
    "<|assistant_start|>", "<|assistant_end|>",
    "<|python_start|>", "<|python_end|>",
    "<|output_start|>", "<|output_end|>",
)

TOOL_TOKENS = ("<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>")

# A reply ends at <|assistant_end|>, at <|bos|> (a new document), or at any turn boundary: a small model sometimes
# samples `<|user_end|><|assistant_start|>` mid-reply and goes on as if it were a new turn; what follows is not
# part of its answer, so chat, serve, the evals and RL all stop there rather than print the tokens as text.
REPLY_STOP_TOKENS = ("<|assistant_end|>", "<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>")


def special_ids(tokenizer, names) -> dict[str, int]:
    """{name: id} for those of `names` the tokenizer has (a byte-level or foreign tokenizer may lack some)."""
    found = {}
    for name in names:
        try:
            found[name] = tokenizer.special_id(name)
        except (KeyError, ValueError):
            pass
    return found


def reply_stop_ids(tokenizer) -> set[int]:
    """The ids at which a sampled reply ends (REPLY_STOP_TOKENS the tokenizer has)."""
    return set(special_ids(tokenizer, REPLY_STOP_TOKENS).values())
