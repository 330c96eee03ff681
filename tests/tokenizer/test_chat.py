"""The chat template: ids and masks on multi-turn and tool-use conversations, system merge, completion prompts,
and clear ValueErrors, with both the BPE and the byte-level tokenizer."""

from __future__ import annotations

import pytest

from nanochat_cli.tokenizer.bpe import BPETokenizer, train_ranks
from nanochat_cli.tokenizer.byte_level import ByteTokenizer
from nanochat_cli.tokenizer.chat import render_conversation, render_for_completion

TEXT = ("What is 12 times 7? Let me compute that with the calculator. The answer is 84. "
        "Hello there, how are you today? I am fine, thank you for asking. ") * 50


def _bpe():
    return BPETokenizer(train_ranks([TEXT], 400))


TOKENIZERS = {"byte": ByteTokenizer(), "bpe": _bpe()}

TOOL_CONV = {"messages": [
    {"role": "user", "content": "What is 12 times 7?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Let me compute that."},
        {"type": "python", "text": "12*7"},
        {"type": "python_output", "text": "84"},
        {"type": "text", "text": "The answer is 84."},
    ]},
]}


def _segments(tok, ids, mask):
    """[(mask, decoded text)] runs of equal mask, to read what is learned and what is not."""
    runs, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or mask[i] != mask[start]:
            runs.append((mask[start], tok.decode(ids[start:i])))
            start = i
    return runs


@pytest.fixture(params=list(TOKENIZERS))
def tok(request):
    return TOKENIZERS[request.param]


def test_multi_turn(tok):
    conv = {"messages": [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "I am fine"},
                         {"role": "user", "content": "how are you"}, {"role": "assistant", "content": "thank you"}]}
    ids, mask = render_conversation(tok, conv)
    assert len(ids) == len(mask) and ids[0] == tok.bos_id
    assert _segments(tok, ids, mask) == [
        (0, "<|bos|><|user_start|>Hello there<|user_end|><|assistant_start|>"),
        (1, "I am fine<|assistant_end|>"),
        (0, "<|user_start|>how are you<|user_end|><|assistant_start|>"),
        (1, "thank you<|assistant_end|>"),
    ]


def test_tool_use_masks(tok):
    ids, mask = render_conversation(tok, TOOL_CONV)
    assert _segments(tok, ids, mask) == [
        (0, "<|bos|><|user_start|>What is 12 times 7?<|user_end|><|assistant_start|>"),
        (1, "Let me compute that.<|python_start|>12*7<|python_end|>"),
        (0, "<|output_start|>84<|output_end|>"),
        (1, "The answer is 84.<|assistant_end|>"),
    ]
    sid = tok.special_id
    for name, m in [("<|python_start|>", 1), ("<|python_end|>", 1), ("<|output_start|>", 0),
                    ("<|output_end|>", 0), ("<|assistant_end|>", 1), ("<|user_start|>", 0)]:
        assert mask[ids.index(sid(name))] == m, name


def test_system_merged_into_first_user(tok):
    with_system = {"messages": [{"role": "system", "content": "Be brief."}, *TOOL_CONV["messages"]]}
    merged = {"messages": [{"role": "user", "content": "Be brief.\n\nWhat is 12 times 7?"}, TOOL_CONV["messages"][1]]}
    assert render_conversation(tok, with_system) == render_conversation(tok, merged)


def test_max_tokens_truncates_both(tok):
    ids, mask = render_conversation(tok, TOOL_CONV)
    assert render_conversation(tok, TOOL_CONV, max_tokens=7) == (ids[:7], mask[:7])


def test_render_for_completion(tok):
    prompt = render_for_completion(tok, TOOL_CONV)
    assert prompt[-1] == tok.special_id("<|assistant_start|>")
    assert tok.decode(prompt) == "<|bos|><|user_start|>What is 12 times 7?<|user_end|><|assistant_start|>"
    ids, _ = render_conversation(tok, TOOL_CONV)
    assert ids[:len(prompt)] == prompt
    # A conversation that ends with the user's turn is primed the same way.
    assert render_for_completion(tok, {"messages": TOOL_CONV["messages"][:1]}) == prompt


@pytest.mark.parametrize("conv, needle", [
    ({"messages": []}, "at least one message"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "message 0 is from 'assistant', expected 'user'"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "message 1 is from 'user'"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                   {"role": "user", "content": "x"}]}, "message 2 is from 'user'"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]},
     "must be followed by a user message"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, "content must be a string"),
    ({"messages": [{"role": "user", "content": "q"},
                   {"role": "assistant", "content": [{"type": "image", "text": "x"}]}]}, "part 0"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "message 0: expected"),
    ({"turns": []}, "a conversation is"),
])
def test_bad_conversations_raise_clear_value_error(conv, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace("'", "'")):
        render_conversation(TOKENIZERS["byte"], conv)


def test_completion_needs_a_user_turn():
    with pytest.raises(ValueError, match="must end with a user message"):
        render_for_completion(TOKENIZERS["byte"], {"messages": []})
