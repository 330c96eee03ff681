"""Migration of a home made before tokenizer versions (written exactly as that release wrote it): the tokenizer
becomes a version and the default with the same ids, old checkpoints' fingerprints still find it, nothing is
deleted, a second run changes nothing, a damaged old directory is left alone, and two processes migrating at
once migrate once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nanochat_cli.config_sources import load_config
from nanochat_cli.errors import PreflightError
from nanochat_cli.paths import Paths
from nanochat_cli.tokenizer import list_tokenizers, load_tokenizer, store, tokenizer_matches
from nanochat_cli.tokenizer.bpe import BPETokenizer
from nanochat_cli.tokenizer.legacy import migrate_legacy
from tests.conftest import cli_env
from tests.tokenizer.legacy_home import TEXT, small_ranks, write_legacy_tokenizer

VOCAB = 400


@pytest.fixture(scope="module")
def ranks():
    return small_ranks(VOCAB)


def cfg_for(home):
    return load_config(flags={"home": str(home), "tokenizer.vocab_size": VOCAB}, environ={}).config


def test_old_home_becomes_a_version_and_the_default_with_the_same_ids(tmp_path, ranks, capsys):
    old_sha = write_legacy_tokenizer(tmp_path, ranks, eval_report={"tokenizers": ["ours"], "texts": []})
    old_bytes = (tmp_path / "tokenizer" / "tokenizer.tiktoken").read_bytes()
    tok = load_tokenizer(cfg_for(tmp_path))
    paths = Paths(tmp_path)
    d = paths.tokenizer_dir(tok.fingerprint)
    meta = json.loads((d / "tokenizer.json").read_text())
    assert (d / "tokenizer.tiktoken").read_bytes() == old_bytes
    assert meta["ranks_sha256"] == old_sha == tok.ranks_sha256 and meta["migrated_from"] == str(tmp_path / "tokenizer")
    assert meta["train_chars"] == 400_000 and "sha256" not in meta and meta["created"].endswith("Z")
    assert store.read_default(paths) == tok.fingerprint
    assert json.loads((d / "eval.json").read_text())["fingerprint"] == old_sha  # the eval came along
    # Nothing deleted: the old directory is kept, renamed, byte for byte.
    assert not (tmp_path / "tokenizer").exists()
    kept = paths.migrated_tokenizers / f"tokenizer-{old_sha[:12]}"
    assert (kept / "tokenizer.tiktoken").read_bytes() == old_bytes and (kept / "tokenizer.json").is_file()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"version {tok.fingerprint[:12]}, the default" in err and str(kept) in err
    # The ids are exactly the ones the old tokenizer gave, and old checkpoints' fingerprint finds it.
    old = BPETokenizer(ranks)
    assert tok.encode(TEXT) == old.encode(TEXT) and tok.bos_id == old.bos_id
    assert load_tokenizer(cfg_for(tmp_path), old_sha).fingerprint == tok.fingerprint
    assert tokenizer_matches(tok, old_sha) and store.eval_for(paths, old_sha)["fingerprint"] == old_sha
    # Idempotent: nothing left to migrate, nothing changes.
    assert migrate_legacy(paths) is None
    assert [v.fingerprint for v in list_tokenizers(paths)] == [tok.fingerprint]
    assert capsys.readouterr().err == ""


def test_an_old_release_run_again_adds_a_version_without_taking_the_default(tmp_path, ranks):
    write_legacy_tokenizer(tmp_path, ranks)
    first = load_tokenizer(cfg_for(tmp_path))
    other = small_ranks(VOCAB + 50)
    write_legacy_tokenizer(tmp_path, other)  # the old release trained again into <home>/tokenizer
    fps = [v.fingerprint for v in list_tokenizers(Paths(tmp_path))]  # list migrates too
    assert len(fps) == 2 and first.fingerprint in fps
    assert store.read_default(Paths(tmp_path)) == first.fingerprint  # the default a user chose stays
    assert len(list(Paths(tmp_path).migrated_tokenizers.iterdir())) == 2
    write_legacy_tokenizer(tmp_path, ranks)  # and once more with the first tokenizer: same version, kept aside
    assert migrate_legacy(Paths(tmp_path)) == first.fingerprint
    names = sorted(p.name for p in Paths(tmp_path).migrated_tokenizers.iterdir())
    assert len(names) == 3 and any(n.endswith(".2") for n in names)
    assert len(list_tokenizers(Paths(tmp_path))) == 2


def test_damaged_old_directory_is_left_alone_and_named(tmp_path, ranks):
    write_legacy_tokenizer(tmp_path, ranks)
    token_file = tmp_path / "tokenizer" / "tokenizer.tiktoken"
    token_file.write_bytes(token_file.read_bytes()[:-10])  # torn by a crash, as the old release could leave it
    with pytest.raises(PreflightError) as e:
        load_tokenizer(cfg_for(tmp_path))
    assert "cannot be moved into" in e.value.message and "does not match the sha256" in e.value.message
    assert "nanochat tokenizer train" in e.value.fix
    assert token_file.is_file() and list_tokenizers(Paths(tmp_path)) == []
    # An empty directory (what the old release left after a failed training) is nothing to migrate.
    empty = tmp_path / "h2"
    (empty / "tokenizer").mkdir(parents=True)
    assert migrate_legacy(Paths(empty)) is None and (empty / "tokenizer").is_dir()
    with pytest.raises(PreflightError, match="no trained tokenizer"):
        load_tokenizer(cfg_for(empty))


MIGRATE = """
import sys, time
from pathlib import Path
from nanochat_cli.config_sources import load_config
from nanochat_cli.tokenizer import load_tokenizer
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
cfg = load_config(flags={"home": sys.argv[1], "tokenizer.vocab_size": 400}, environ={}).config
print(load_tokenizer(cfg).fingerprint)
"""


def test_two_processes_migrating_at_once_migrate_once(tmp_path, ranks):
    write_legacy_tokenizer(tmp_path, ranks)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, str(tmp_path), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=cli_env()) for _ in range(3)]
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert len({o[0].strip() for o in outs}) == 1
    assert sum(o[1].count("moved") for o in outs) == 1  # exactly one of them did the move
    assert len(list_tokenizers(Paths(tmp_path))) == 1
    assert len(list(Paths(tmp_path).migrated_tokenizers.iterdir())) == 1


def test_old_directory_moved_by_another_process_mid_check_is_not_a_traceback(tmp_path, ranks, monkeypatch):
    """The race the test above hits now and then: this process reads the old directory before taking the lock,
    and the process holding it renames the directory into .migrated/ in between. That is "nothing left to
    migrate here", not an error (the other process has made the version and the default by then)."""
    import nanochat_cli.tokenizer.legacy as legacy

    write_legacy_tokenizer(tmp_path, ranks)
    paths = Paths(tmp_path)
    real_read = legacy.read_files

    def read_then_lose_the_race(directory):
        files = real_read(directory)
        directory.rename(tmp_path / "moved-by-the-other-process")
        return files

    monkeypatch.setattr(legacy, "read_files", read_then_lose_the_race)
    assert migrate_legacy(paths, notice=lambda m: None) is None
    assert not paths.legacy_tokenizer.exists() and (tmp_path / "moved-by-the-other-process").is_dir()
