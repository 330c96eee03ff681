"""The embedded corpus: shape, determinism, idempotence, held-out validation, and the shard helpers."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from nanochat_cli.data import embedded
from nanochat_cli.data.shards import first_row_group_text, iter_texts, list_shards
from nanochat_cli.errors import PreflightError, UsageError
from tests.tokenizer.corpus import built_corpus, install_corpus


def _titles(path):
    return {t.split("\n", 1)[0] for t in pq.read_table(path).column("text").to_pylist()}


def test_shape_schema_and_held_out_validation():
    d = built_corpus()
    shards = sorted(d.glob("shard_*.parquet"))
    assert [p.name for p in shards] == ["shard_00000.parquet", "shard_00001.parquet", "shard_00002.parquet"]
    total = 0
    for p in shards:
        pf = pq.ParquetFile(p)
        assert pf.schema_arrow.names == ["text"] and str(pf.schema_arrow.field("text").type) == "string"
        assert pf.num_row_groups >= 3  # enough row groups for 2+ DDP ranks, validation included
        assert all(pf.metadata.row_group(i).num_rows <= embedded.ROW_GROUP_DOCS for i in range(pf.num_row_groups))
        total += sum(len(t) for t in pq.read_table(p).column("text").to_pylist())
    assert 15_000_000 < total < 18_000_000
    val = shards[-1]
    assert pq.read_metadata(val).num_rows == embedded.VAL_CHAPTERS * len(embedded.TRANSLATIONS)
    # A held-out chapter is held out in every translation, so no train document shares a validation title.
    assert not _titles(val) & (_titles(shards[0]) | _titles(shards[1]))
    first = pq.read_table(shards[0]).column("text")[0].as_py()
    title, body = first.split("\n\n", 1)
    assert title.rsplit(" ", 1)[1].isdigit() and len(body) > 100 and "  " not in body


def test_deterministic_bytes_and_idempotent(tmp_path):
    cfg = SimpleNamespace(home=tmp_path)
    paths = embedded.ensure_embedded_corpus(cfg)
    ref = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(built_corpus().glob("shard_*"))}
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths} == ref
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert embedded.ensure_embedded_corpus(cfg) == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes  # verified, not rewritten


def test_torn_shard_is_rewritten_and_foreign_shards_refused(tmp_path):
    cfg = SimpleNamespace(home=tmp_path / "h")
    d = install_corpus(cfg.home)
    good = (d / "shard_00001.parquet").read_bytes()
    (d / "shard_00001.parquet").write_bytes(good[: len(good) // 2])
    (d / "shard_00002.parquet").unlink()
    embedded.ensure_embedded_corpus(cfg)
    assert (d / "shard_00001.parquet").read_bytes() == good
    assert (d / "shard_00002.parquet").exists()
    assert not list(d.glob("*.tmp")) and not list(d.glob(".*"))

    other = SimpleNamespace(home=tmp_path / "fineweb")
    (other.home / "base_data").mkdir(parents=True)
    (other.home / "base_data" / "shard_00000.parquet").write_bytes(b"not ours")
    with pytest.raises(UsageError, match="not the embedded corpus"):
        embedded.ensure_embedded_corpus(other)
    assert (other.home / "base_data" / "shard_00000.parquet").read_bytes() == b"not ours"


def test_list_shards(tmp_path):
    cfg = SimpleNamespace(home=tmp_path)
    with pytest.raises(PreflightError) as e:
        list_shards(cfg)
    assert "nanochat data fetch base" in e.value.fix
    install_corpus(tmp_path)
    train, val = list_shards(cfg)
    assert [p.name for p in train] == ["shard_00000.parquet", "shard_00001.parquet"]
    assert val.name == "shard_00002.parquet"


def test_iter_texts_budget_and_cap():
    d = built_corpus()
    files = sorted(d.glob("shard_*.parquet"))[:2]
    texts = list(iter_texts(files, max_chars=50_000, doc_cap=1_000))
    assert sum(map(len, texts)) == 50_000
    assert max(map(len, texts)) == 1_000
    assert texts[0] == pq.read_table(files[0]).column("text")[0].as_py()[:1_000]
    assert first_row_group_text(files[0]).count("\n\n") >= embedded.ROW_GROUP_DOCS


def test_iter_texts_corrupt_shard(tmp_path):
    bad = tmp_path / "shard_00000.parquet"
    bad.write_bytes(b"PAR1 truncated")
    with pytest.raises(UsageError, match="shard_00000.parquet is not a readable parquet file"):
        list(iter_texts([bad], 1000, 100))
