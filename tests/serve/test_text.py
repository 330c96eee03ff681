"""Streamed text: whole characters, the same text streamed or not, stop strings held back, tool-call parts."""

from __future__ import annotations

import pytest

from nanochat_cli.serve.text import TextStream, assistant_content, token_bytes_of
from nanochat_cli.tokenizer.byte_level import ByteTokenizer


def _stream(text_ids, stops=None):
    tok = ByteTokenizer()
    ts = TextStream(token_bytes_of(tok), stops)
    pieces = [ts.feed(i) for i in text_ids]
    pieces.append(ts.finish())
    return pieces, ts


def test_multibyte_characters_are_sent_whole_and_join_to_decode():
    tok = ByteTokenizer()
    ids = tok.encode("héllo → 🌍") + [0xFF, 0xE2]  # an invalid byte and a cut-off character at the end
    pieces, _ = _stream(ids)
    assert "".join(pieces) == tok.decode(ids)
    assert all("\ufffd" not in p for p in pieces[:-3])  # no half characters mid-stream


@pytest.mark.parametrize("stops,expected", [(["lo w"], "hel"), (["xyz"], "hello world"), (["o", "l"], "he"),
                                            (["world", "hello"], "")])
def test_stop_strings_cut_the_text_before_them(stops, expected):
    tok = ByteTokenizer()
    pieces, ts = _stream(tok.encode("hello world"), stops)
    assert "".join(pieces) == expected
    assert ts.stopped == (expected != "hello world")


def test_a_possible_stop_prefix_is_held_back_then_released():
    tok = ByteTokenizer()
    ts = TextStream(token_bytes_of(tok), ["abc"])
    assert [ts.feed(i) for i in tok.encode("xab")] == ["x", "", ""]
    assert ts.feed(ord("d")) == "abd"


def test_special_tokens_show_as_their_text():
    tok = ByteTokenizer()
    ids = [tok.special_id("<|python_start|>"), *tok.encode("1+1"), tok.special_id("<|python_end|>")]
    assert "".join(_stream(ids)[0]) == "<|python_start|>1+1<|python_end|>"


def test_assistant_content_parses_tool_calls_back_into_parts():
    text = "Sure: <|python_start|>6*7<|python_end|><|output_start|>42<|output_end|> so 42."
    assert assistant_content(text) == [
        {"type": "text", "text": "Sure: "}, {"type": "python", "text": "6*7"},
        {"type": "python_output", "text": "42"}, {"type": "text", "text": " so 42."}]
    assert assistant_content("plain") == "plain"
    assert assistant_content("open <|python_start|>1+") == [{"type": "text", "text": "open <|python_start|>1+"}]


def test_parts_render_to_the_tokens_the_model_produced():
    from nanochat_cli.tokenizer.chat import render_conversation

    tok = ByteTokenizer()
    sid = tok.special_id
    produced = [*tok.encode("a "), sid("<|python_start|>"), *tok.encode("2+2"), sid("<|python_end|>"),
                sid("<|output_start|>"), *tok.encode("4"), sid("<|output_end|>")]
    text = tok.decode(produced)
    ids, _ = render_conversation(tok, {"messages": [{"role": "user", "content": "q"},
                                                    {"role": "assistant", "content": assistant_content(text)}]})
    start = ids.index(sid("<|assistant_start|>")) + 1
    assert ids[start:-1] == produced
