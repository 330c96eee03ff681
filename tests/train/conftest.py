"""Fixtures for training tests: a home with two small parquet shards and a tiny config (depth 2, width
64, seq 32, byte tokenizer) so a step takes milliseconds on 2 cores."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

TINY_TOML = """
[model]
depth = 2
aspect_ratio = 32
head_dim = 32
seq_len = 32

[tokenizer]
kind = "byte"

[train]
device = "cpu"
dtype = "float32"
compile = "off"
device_batch_size = 2
total_batch_size = 128
num_iterations = {iters}
eval_every = {eval_every}
eval_tokens = 128
sample_every = 0
save_every = {save_every}
keep_last = {keep_last}
threads = 1
"""

WORDS = ("the a of and to in is was he she it that for on with as his her they at by this had not but from "
         "king river stone light garden house water bread city night morning song field road friend").split()


def write_shards(home: Path, n_shards: int = 2, docs: int = 60) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(1234)
    d = home / "base_data"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n_shards):
        texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120))) + "." for _ in range(docs)]
        pq.write_table(pa.table({"text": texts}), d / f"shard_{i:05d}.parquet", row_group_size=20)


def tiny_config_file(tmp_path: Path, iters=30, eval_every=10, save_every=5, keep_last=3) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_TOML.format(iters=iters, eval_every=eval_every, save_every=save_every, keep_last=keep_last))
    return p


def tiny_config(home: Path, tmp_path: Path, **kw):
    from nanochat_cli.config_sources import load_config

    return load_config(config_file=tiny_config_file(tmp_path, **kw), flags={"home": str(home)}).config


def losses(home: Path) -> dict[int, float]:
    """step → training loss from the (single) run's metrics.jsonl."""
    files = list((home / "runs").glob("*/metrics.jsonl"))
    assert len(files) == 1, files
    out = {}
    for line in files[0].read_text().splitlines():
        r = json.loads(line)
        if "loss" in r:
            out[r["step"]] = r["loss"]
    return out


def run_checkpoints(home: Path, phase: str = "base", run: str | None = None) -> Path:
    """`runs/<run>/checkpoints/<phase>` of `run`, or of the only run that has that phase."""
    if run is not None:
        return home / "runs" / run / "checkpoints" / phase
    dirs = list((home / "runs").glob(f"*/checkpoints/{phase}"))
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.fixture
def data_home(home) -> Path:
    write_shards(home)
    return home
