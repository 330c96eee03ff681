"""`nanochat tokenizer train|eval` as a user runs them: results, --json, bad input as one line + exit 2."""

from __future__ import annotations

import json

import pytest

from tests.tokenizer.corpus import install_corpus

SMALL = ["--vocab-size", "512", "--train-chars", "200000"]


def test_train_builds_embedded_corpus_and_tokenizer(run_cli, home):
    r = run_cli("tokenizer", "train", *SMALL, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["vocab_size"] == 512 and out["train_chars"] == 200_000 and out["source"] == "embedded"
    assert sorted(p.name for p in (home / "base_data").glob("shard_*")) == [
        "shard_00000.parquet", "shard_00001.parquet", "shard_00002.parquet"]
    assert (home / "tokenizer" / "tokenizer.tiktoken").is_file()


@pytest.mark.parametrize("args, needle", [
    (["--vocab-size", "100"], "greater than or equal to 265"),
    (["--vocab-size", "60000", "--train-chars", "2000"], "lower tokenizer.vocab_size"),
])
def test_bad_vocab_exit_2(run_cli, home, args, needle):
    install_corpus(home)
    r = run_cli("tokenizer", "train", *args)
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert r.returncode == 2 and len(errors) == 1 and needle in errors[0], r.stderr
    assert not (home / "tokenizer" / "tokenizer.tiktoken").exists()


def test_torn_embedded_shard_is_repaired_before_training(run_cli, home):
    d = install_corpus(home)
    data = (d / "shard_00000.parquet").read_bytes()
    (d / "shard_00000.parquet").write_bytes(data[: len(data) // 3])
    r = run_cli("tokenizer", "train", *SMALL)
    assert r.returncode == 0, r.stderr
    assert (d / "shard_00000.parquet").read_bytes() == data


def test_corrupt_shard_exit_2_nothing_written(run_cli, home):
    d = install_corpus(home)
    data = (d / "shard_00000.parquet").read_bytes()
    (d / "shard_00000.parquet").write_bytes(data[: len(data) // 3])
    r = run_cli("tokenizer", "train", *SMALL, env={"NANOCHAT_DATA__SOURCE": "fineweb"})
    assert r.returncode == 2, r.stderr
    assert "shard_00000.parquet" in r.stderr and "nanochat data fetch base" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (home / "tokenizer").exists() or not any((home / "tokenizer").iterdir())


def test_empty_corpus_exit_2(run_cli, home):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = home / "base_data"
    d.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"text": pa.array([""] * 3, type=pa.string())}), d / f"shard_{i:05d}.parquet")
    r = run_cli("tokenizer", "train", *SMALL, env={"NANOCHAT_DATA__SOURCE": "fineweb"})
    assert r.returncode == 2 and "contain no text" in r.stderr, r.stderr


def test_no_shards_fineweb_is_preflight(run_cli, home):
    r = run_cli("tokenizer", "train", *SMALL, env={"NANOCHAT_DATA__SOURCE": "fineweb"})
    assert r.returncode == 3 and "nanochat data fetch base" in r.stderr


def test_unwritable_home_exit_2(run_cli, home, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli("--home", str(blocker / "sub"), "tokenizer", "train", *SMALL)
    assert r.returncode == 2 and "writable" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_cli("--home", str(blocker / "sub"), "tokenizer", "eval")
    assert r.returncode in (2, 3) and "Traceback" not in r.stderr, r.stderr
