"""BPE training on a small char budget, the tiktoken runtime, the stored version, and load_tokenizer's preflight."""

from __future__ import annotations

import json
import shutil

import pytest

from nanochat_cli.config_sources import load_config
from nanochat_cli.errors import PreflightError
from nanochat_cli.tokenizer import load_tokenizer
from nanochat_cli.tokenizer.bpe import BPETokenizer
from nanochat_cli.tokenizer.training import train_tokenizer
from nanochat_cli.tokenizer.store import META_FILE, TOKEN_FILE
from nanochat_cli.tokenizer.special import SPECIAL_TOKENS
from tests.tokenizer.corpus import install_corpus

VOCAB = 1024
FLAGS = {"tokenizer.vocab_size": VOCAB, "tokenizer.train_chars": 400_000, "tokenizer.doc_cap": 4_000}
SAMPLES = ["Hello, world! It's 2026: 3.14159 + 271 = 274.14159.\n\n\tindented\r\nCRLF",
           "안녕하세요, 세계! 日本語のテキスト。 Ünïcödé façade — “quotes” 🙂👍🏽",
           "def f(x):\n    return x ** 2  # comment\n", "", " ", "\x00\x01\xff", "a" * 5000]


def _cfg(home, **extra):
    return load_config(flags={"home": str(home), **FLAGS, **extra}).config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("tokhome")
    install_corpus(home)
    cfg = _cfg(home)
    return cfg, train_tokenizer(cfg), load_tokenizer(cfg)


def test_train_writes_a_version_and_makes_it_the_default(trained):
    cfg, result, tok = trained
    d = cfg.home / "tokenizers" / result["fingerprint"]
    assert result["dir"] == str(d) and result["new"] and result["previous_default"] is None
    assert (cfg.home / "tokenizers" / "default").read_text() == result["fingerprint"] + "\n"
    meta = json.loads((d / META_FILE).read_text())
    assert meta["vocab_size"] == VOCAB == tok.vocab_size == result["vocab_size"]
    assert meta["special_tokens"] == {n: VOCAB - len(SPECIAL_TOKENS) + i for i, n in enumerate(SPECIAL_TOKENS)}
    assert meta["train_chars"] == 400_000 and meta["seconds"] > 0 and "\\p{N}{1,2}" in meta["pattern"]
    lines = (d / TOKEN_FILE).read_text().splitlines()
    assert len(lines) == VOCAB - len(SPECIAL_TOKENS)
    assert lines[65] == "QQ== 65"  # rank b < 256 is the single byte b
    assert tok.fingerprint == meta["fingerprint"] == result["fingerprint"] and len(tok.fingerprint) == 64
    assert tok.ranks_sha256 == meta["ranks_sha256"] == result["ranks_sha256"] != tok.fingerprint


def test_training_is_deterministic_and_never_touches_a_stored_version(trained, tmp_path):
    cfg, result, _ = trained
    install_corpus(tmp_path)
    first = train_tokenizer(_cfg(tmp_path, **{"tokenizer.vocab_size": 512}))
    again = train_tokenizer(_cfg(tmp_path))
    assert again["fingerprint"] == result["fingerprint"] and again["ranks_sha256"] == result["ranks_sha256"]
    assert again["previous_default"] == first["fingerprint"] and again["other_versions"] == 1
    d = tmp_path / "tokenizers" / again["fingerprint"]
    before = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    same = train_tokenizer(_cfg(tmp_path))  # the same version again: it only becomes the default
    assert not same["new"] and {p.name: p.stat().st_mtime_ns for p in d.iterdir()} == before
    assert load_tokenizer(_cfg(tmp_path, **{"tokenizer.vocab_size": 512}), first["fingerprint"]).vocab_size == 512


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip(trained, text):
    tok = trained[2]
    assert tok.decode(tok.encode(text)) == text


def test_specials_prepend_and_batch(trained):
    tok = trained[2]
    assert tok.bos_id == tok.special_id("<|bos|>") == VOCAB - len(SPECIAL_TOKENS)
    assert [tok.special_id(n) for n in SPECIAL_TOKENS] == list(range(VOCAB - len(SPECIAL_TOKENS), VOCAB))
    # Special-token text in ordinary input stays text: a user cannot inject <|bos|>.
    assert tok.bos_id not in tok.encode("<|bos|>") and tok.decode(tok.encode("<|bos|>")) == "<|bos|>"
    ids = tok.encode("In the beginning", prepend=tok.bos_id)
    assert ids[0] == tok.bos_id and tok.encode("In the beginning", prepend="<|bos|>") == ids
    assert tok.decode([tok.bos_id, tok.special_id("<|user_start|>")]) == "<|bos|><|user_start|>"
    assert tok.encode_batch(SAMPLES, prepend=tok.bos_id) == [tok.encode(s, prepend=tok.bos_id) for s in SAMPLES]


def test_merges_learned_and_digits_split(trained):
    tok = trained[2]
    text = "And God said, Let there be light: and there was light."
    ids = tok.encode(text)
    assert len(text.encode()) / len(ids) > 3.0  # a 1k vocab trained on this corpus compresses its own style
    assert all(len(tok.token_bytes(i).strip(b"0123456789")) == len(tok.token_bytes(i))
               or len(tok.token_bytes(i)) <= 2 for i in tok.encode("1234567890 987654"))


def test_load_tokenizer_preflight(tmp_path, trained):
    cfg = _cfg(tmp_path)
    with pytest.raises(PreflightError) as e:
        load_tokenizer(cfg)
    assert "nanochat tokenizer train" in e.value.fix
    fp = trained[1]["fingerprint"]
    src = trained[0].home / "tokenizers" / fp
    shutil.copytree(src, tmp_path / "tokenizers" / fp)
    (tmp_path / "tokenizers" / "default").write_text(fp)
    d = tmp_path / "tokenizers" / fp
    (d / TOKEN_FILE).write_bytes((src / TOKEN_FILE).read_bytes()[:-10])  # torn
    with pytest.raises(PreflightError, match="does not match ranks_sha256"):
        load_tokenizer(cfg)
    (d / TOKEN_FILE).write_bytes((src / TOKEN_FILE).read_bytes())
    assert isinstance(load_tokenizer(cfg), BPETokenizer)
    with pytest.raises(PreflightError, match="1,024 tokens but tokenizer.vocab_size is 2,048"):
        load_tokenizer(_cfg(tmp_path, **{"tokenizer.vocab_size": 2048}))
    assert load_tokenizer(_cfg(tmp_path, **{"tokenizer.kind": "byte"})).vocab_size == 256 + len(SPECIAL_TOKENS)
