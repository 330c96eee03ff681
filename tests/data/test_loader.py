"""TokenLoader: packing, BOS per document, rank sharding, streaming, and exact resume from state_dict()."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanochat_cli.data.loader import TokenLoader, measure_loader_throughput
from nanochat_cli.errors import NanochatError
from nanochat_cli.tokenizer.byte_level import ByteTokenizer

TOK = ByteTokenizer()
BOS = TOK.bos_id


def _doc(s: int, i: int) -> str:
    return f"shard{s} doc{i} " + "ab" * (i % 23)


@pytest.fixture
def shards(tmp_path):
    files = []
    for s in range(3):
        p = tmp_path / f"shard_{s:05d}.parquet"
        pq.write_table(pa.table({"text": [_doc(s, i) for i in range(90)]}), p, row_group_size=16)
        files.append(p)
    return files


def _batches(loader, n):
    return [next(loader) for _ in range(n)]


def test_packing_is_the_token_stream_with_bos_per_document(shards):
    loader = TokenLoader(shards, TOK, 2, 8, loop=False)
    stream = []
    for s in range(3):
        for i in range(90):
            stream += TOK.encode(_doc(s, i), prepend=BOS)
    got = []
    for x, y in loader:
        assert x.shape == y.shape == (2, 8)
        flat_x, flat_y = x.reshape(-1).tolist(), y.reshape(-1).tolist()
        assert flat_x[1:] == flat_y[:-1]  # targets are inputs shifted by one
        got += flat_x
    # Every batch continues where the last stopped; only the final partial batch is dropped.
    assert got == stream[:len(got)]
    assert len(stream) - len(got) <= 2 * 8
    assert got.count(BOS) == stream[:len(got)].count(BOS)


@pytest.mark.parametrize("k", [0, 1, 7, 40])
def test_restored_loader_yields_the_same_next_batches(shards, k):
    ref = _batches(TokenLoader(shards, TOK, 3, 11), k + 25)  # 25 batches past k cross files and an epoch
    first = TokenLoader(shards, TOK, 3, 11)
    _batches(first, k)
    state = json.loads(json.dumps(first.state_dict()))  # must survive a JSON round trip (checkpoint metadata)
    first.close()
    restored = TokenLoader(shards, TOK, 3, 11)
    restored.load_state_dict(state)
    for j, (x, y) in enumerate(_batches(restored, 25)):
        assert x.equal(ref[k + j][0]) and y.equal(ref[k + j][1]), f"batch {k + j} differs after restore"


def test_loop_counts_epochs_and_state_survives_the_wrap(shards):
    loader = TokenLoader(shards, TOK, 4, 64)
    epochs = set()
    for _ in range(60):
        next(loader)
        epochs.add(loader.state_dict()["epoch"])
    assert {0, 1} <= epochs


def test_ranks_get_disjoint_rows_and_restore_per_rank(shards):
    docs = []
    for rank in range(2):
        loader = TokenLoader(shards, TOK, 1, 32, rank=rank, world_size=2, loop=False)
        text = "".join(TOK.decode(x[0].tolist()) for x, _ in loader)
        docs.append(set(text.split("<|bos|>")))
    # Row i of each row group goes to rank i % 2: doc0 (row 0) to rank 0, doc1 to rank 1, doc16 (row 0 of rg 1) to 0.
    assert _doc(0, 0) in docs[0] and _doc(0, 1) in docs[1] and _doc(0, 16) in docs[0] and _doc(0, 17) in docs[1]
    assert not (docs[0] & docs[1]) - {""}
    ref = _batches(TokenLoader(shards, TOK, 2, 9, rank=1, world_size=2), 30)
    a = TokenLoader(shards, TOK, 2, 9, rank=1, world_size=2)
    _batches(a, 12)
    b = TokenLoader(shards, TOK, 2, 9, rank=1, world_size=2)
    b.load_state_dict(a.state_dict())
    assert all(x.equal(ref[12 + j][0]) for j, (x, _) in enumerate(_batches(b, 18)))
    with pytest.raises(NanochatError, match="rank 1 of 2"):
        TokenLoader(shards, TOK, 2, 9, rank=0, world_size=2).load_state_dict(a.state_dict())


def test_a_single_row_group_is_shared_by_ranks(tmp_path):
    p = tmp_path / "shard_00000.parquet"
    pq.write_table(pa.table({"text": [f"validation doc {i}" for i in range(10)]}), p)
    halves = [TOK.decode(next(TokenLoader([p], TOK, 1, 40, rank=r, world_size=2))[0][0].tolist()) for r in range(2)]
    assert "validation doc 0" in halves[0] and "validation doc 1" in halves[1]


def test_streams_lazily_and_reports_a_corrupt_shard_when_reached(shards, tmp_path):
    bad = tmp_path / "shard_00009.parquet"
    bad.write_bytes(b"<html>not parquet</html>")
    loader = TokenLoader([shards[0], bad], TOK, 2, 16)
    next(loader)  # the first shard is read without touching the second
    with pytest.raises(NanochatError, match="shard_00009"):
        for _ in range(1000):
            next(loader)


def test_a_rank_without_rows_is_an_error_not_a_hang(tmp_path):
    p = tmp_path / "shard_00000.parquet"
    pq.write_table(pa.table({"text": ["a single row"]}), p)
    loader = TokenLoader([p], TOK, 1, 4, rank=1, world_size=2)
    with pytest.raises(NanochatError, match="gets no data"):
        next(loader)


def test_throughput_measure_reports_tokens_per_second(shards):
    r = measure_loader_throughput(shards, TOK, 2, 32, seconds=0.2)
    assert r["tokens"] > 0 and r["tokens_per_s"] > 0
