"""`nanochat eval bpb` on a tiny checkpoint: equals evaluate_bpb over the same validation batches."""

from __future__ import annotations

import json

import pytest

from tests.eval.ckpt_fixture import save_tiny_checkpoint, write_config


def test_eval_bpb_cli(run_cli, home, tmp_path):
    from tests.train.conftest import write_shards

    cfg = str(write_config(tmp_path))
    r = run_cli("eval", "bpb", "-c", cfg, "--depth", "2")
    assert r.returncode == 3 and "nanochat data fetch base" in r.stderr  # no shards
    write_shards(home)
    r = run_cli("eval", "bpb", "-c", cfg, "--depth", "2")
    assert r.returncode == 2 and "nanochat train base" in r.stderr  # no checkpoint yet
    save_tiny_checkpoint(home, "base")
    r = run_cli("eval", "bpb", "-c", cfg, "--depth", "2", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    # a near-random byte model: about log2(265) ≈ 8 bits per byte, certainly between 1 and 12
    assert 1.0 < res["bpb"] < 12.0 and res["tokens"] == 512
    m = json.loads((home / "runs" / "test-run" / "manifest.json").read_text())
    assert m["evals"]["bpb/base"]["bpb"] == pytest.approx(res["bpb"])
