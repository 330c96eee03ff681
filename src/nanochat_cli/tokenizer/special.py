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
