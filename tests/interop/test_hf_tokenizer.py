"""Our tokenizer as an HF tokenizer.json and back, with `tokenizers` and jinja2 alone (no transformers): the same
ids as tiktoken on every sample, the chat template's ids equal to ours, and tokenizer.json files that are not a
byte-level BPE with nanochat's special tokens refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanochat_cli.errors import UsageError
from nanochat_cli.interop import hf_tokenizer as H
from tests.interop.builders import bpe_ranks


@pytest.fixture(scope="module")
def bpe():
    from nanochat_cli.tokenizer.bpe import BPETokenizer

    return BPETokenizer(dict(bpe_ranks()))


@pytest.fixture(scope="module")
def tokenizer_json(bpe, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tokjson")
    (d / H.TOKENIZER_JSON).write_text(H.build_hf_tokenizer(bpe).to_str())
    return d


def test_hf_tokenizer_gives_tiktoken_ids_and_decodes_back(bpe):
    hf = H.build_hf_tokenizer(bpe)
    texts = H.sample_texts()
    assert H.tokenizer_differences(hf, bpe, texts) == []
    for text in texts:
        assert hf.decode(bpe.encode(text), skip_special_tokens=False) == text
    assert [hf.token_to_id(t) for t in ("<|bos|>", "<|output_end|>")] == [691, 699]
    # special-token text inside a message: ours encodes it as plain text, HF splits it out (documented difference)
    assert bpe.encode("<|bos|>") != [691] and hf.encode("<|bos|>").ids == [691]


def test_chat_template_renders_our_ids(bpe):
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    assert H.chat_differences(H.build_hf_tokenizer(bpe), bpe) == []
    byte = ByteTokenizer()
    assert H.chat_differences(H.build_hf_tokenizer(byte), byte) == []
    text = H.render_chat(H.CHAT_TEMPLATE, [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], True)
    assert text == "<|bos|><|user_start|>S\n\nU<|user_end|><|assistant_start|>"
    for bad in ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
                [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
                [{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "image", "text": ""}]}]):
        with pytest.raises(Exception):  # jinja2's TemplateError, as transformers raises it
            H.render_chat(H.CHAT_TEMPLATE, bad, False)


def test_reading_back_gives_the_same_ranks_pattern_and_kind(bpe, tokenizer_json, tmp_path):
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    got = H.read_tokenizer_json(tokenizer_json)
    assert got.kind == "bpe" and got.ranks == dict(bpe_ranks()) and got.pattern == bpe.pattern
    (tmp_path / H.TOKENIZER_JSON).write_text(H.build_hf_tokenizer(ByteTokenizer()).to_str())
    byte = H.read_tokenizer_json(tmp_path)
    assert byte.kind == "byte" and byte.pattern is None and len(byte.ranks) == 256


def test_a_pattern_that_splits_differently_is_caught(bpe):
    from nanochat_cli.tokenizer.bpe import BPETokenizer

    other = BPETokenizer(dict(bpe_ranks()), pattern=r"""\S+|\s+""")
    with pytest.raises(UsageError, match="split .* sample texts differently"):
        H.check_same_tokenizer(H.build_hf_tokenizer(other), bpe, "test")


def _edit(src: Path, dst: Path, change) -> Path:
    data = json.loads((src / H.TOKENIZER_JSON).read_text())
    change(data)
    dst.mkdir(exist_ok=True)
    (dst / H.TOKENIZER_JSON).write_text(json.dumps(data))
    return dst


def _drop_special(data):
    data["added_tokens"] = data["added_tokens"][:-1]


def _extra_special(data):
    data["added_tokens"].append({**data["added_tokens"][-1], "id": 700, "content": "<|im_start|>"})


def _gpt2_pre(data):
    data["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}


def _not_bytes(data):
    vocab = data["model"]["vocab"]
    vocab["€"] = vocab.pop(next(k for k, v in vocab.items() if v == 300))


REFUSED = {
    "normalizer": (lambda d: d.__setitem__("normalizer", {"type": "NFC"}), "normalizes text"),
    "unigram": (lambda d: d["model"].__setitem__("type", "Unigram"), "not BPE"),
    "missing special": (_drop_special, "missing <|output_end|>"),
    "extra special": (_extra_special, "extra <|im_start|>"),
    "gpt2 regex": (_gpt2_pre, "pre-tokenizer (ByteLevel)"),
    "not byte-level": (_not_bytes, "not in the byte-level alphabet"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_tokenizers_we_cannot_run_are_refused_by_name(tokenizer_json, tmp_path, case):
    change, expected = REFUSED[case]
    with pytest.raises(UsageError) as e:
        H.read_tokenizer_json(_edit(tokenizer_json, tmp_path / "t", change))
    assert expected in e.value.one_line() and e.value.exit_code == 2


def test_unreadable_tokenizer_json_is_one_line(tmp_path):
    (tmp_path / H.TOKENIZER_JSON).write_text("{not json")
    with pytest.raises(UsageError, match="is not readable JSON"):
        H.read_tokenizer_json(tmp_path)
    with pytest.raises(UsageError, match="has no tokenizer.json"):
        H.read_tokenizer_json(tmp_path / "nowhere")
