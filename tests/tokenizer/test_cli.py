"""`nanochat tokenizer train|eval|list|use` as a user runs them: results, --json, versions kept, bad input as one
line + exit 2, and a second `tokenizer train` waiting for the first."""

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
    assert (home / "tokenizers" / out["fingerprint"] / "tokenizer.tiktoken").is_file()
    assert f"{out['fingerprint'][:12]} is now the default tokenizer for new runs" in r.stderr


def test_retraining_keeps_every_version_and_list_shows_them(run_cli, home):
    install_corpus(home)
    first = json.loads(run_cli("tokenizer", "train", *SMALL, "--json").stdout)
    r = run_cli("tokenizer", "train", "--vocab-size", "600", "--train-chars", "200000")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "default tokenizer" in ln]
    assert len(lines) == 1 and "the 1 other version(s)" in lines[0] and "stay as they are" in lines[0]
    assert r.stdout.count("\n") == 1 and "→ version " in r.stdout
    listed = json.loads(run_cli("tokenizer", "list", "--json").stdout)
    assert [(v["vocab_size"], v["default"], v["problem"]) for v in listed] == [(512, False, None), (600, True, None)]
    assert listed[0]["fingerprint"] == first["fingerprint"]
    table = run_cli("tokenizer", "list")
    assert table.returncode == 0 and first["fingerprint"][:12] in table.stdout and "600" in table.stdout
    r = run_cli("tokenizer", "use", first["fingerprint"][:10])
    assert r.returncode == 0 and first["fingerprint"][:12] in r.stdout, r.stderr
    assert (home / "tokenizers" / "default").read_text().strip() == first["fingerprint"]
    r = run_cli("tokenizer", "use", "0000000000")
    assert r.returncode == 2 and "nanochat tokenizer list" in r.stderr and "Traceback" not in r.stderr
    (home / "tokenizers" / first["fingerprint"] / "tokenizer.json").write_text("[]")
    r = run_cli("tokenizer", "list", env={"COLUMNS": "200"})  # a damaged version is listed with its problem
    assert r.returncode == 0 and "tokenizer.json: is not a JSON object" in r.stdout, r.stdout
    r = run_cli("tokenizer", "eval")
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert r.returncode == 3 and len(errors) == 1 and "tokenizer.json: is not a JSON object" in errors[0]
    assert "Traceback" not in r.stderr


def test_list_on_an_empty_home(run_cli):
    r = run_cli("tokenizer", "list", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = run_cli("tokenizer", "list")
    assert r.returncode == 0 and "nanochat tokenizer train" in r.stderr


def test_second_train_waits_for_the_lock_and_says_who_holds_it(run_cli, home):
    import os
    import socket
    import subprocess
    import sys

    from nanochat_cli.locks import hold
    from tests.conftest import cli_env

    install_corpus(home)
    cmd = [sys.executable, "-m", "nanochat_cli", "tokenizer", "train", *SMALL, "--json"]
    env = cli_env({"NANOCHAT_HOME": str(home)})
    with hold(home / "tokenizers" / ".lock", wait=False, what="the tokenizer store"):  # stands in for a training
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        first_line = p.stderr.readline()
        assert first_line.strip() == (f"waiting for the tokenizer lock held by pid {os.getpid()} on "
                                      f"{socket.gethostname()}…")
        assert p.poll() is None and not (home / "tokenizers" / "default").exists()
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    # Two real trainings at once on the same data: one waits, both end with the same single version.
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [pr.communicate(timeout=300) for pr in procs]
    assert all(pr.returncode == 0 for pr in procs), [r[1] for r in results]
    assert {json.loads(r[0])["fingerprint"] for r in results} == {json.loads(out)["fingerprint"]}
    assert len([d for d in (home / "tokenizers").iterdir() if len(d.name) == 64]) == 1


@pytest.mark.parametrize("args, needle", [
    (["--vocab-size", "100"], "must be between 265 and"),
    (["--vocab-size", "60000", "--train-chars", "2000"], "lower tokenizer.vocab_size"),
])
def test_bad_vocab_exit_2(run_cli, home, args, needle):
    install_corpus(home)
    r = run_cli("tokenizer", "train", *args)
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert r.returncode == 2 and len(errors) == 1 and needle in errors[0], r.stderr
    assert not list((home / "tokenizers").glob("*/tokenizer.tiktoken"))


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
    assert not list((home / "tokenizers").glob("*/tokenizer.tiktoken"))
    assert not (home / "tokenizers" / "default").exists()


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
