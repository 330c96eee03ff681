"""The speedrun's eval stage: base bpb + CORE (bundle present) or the mini-suite (absent), chat evals of mid
and SFT, all recorded in metrics.jsonl and the manifest's "evals" key."""

from __future__ import annotations

import json

import pytest

from nanochat_cli.config_sources import load_config
from nanochat_cli.errors import NanochatError
from nanochat_cli.eval.suite import run_speedrun_evals
from tests.eval.bundle import make_bundle
from tests.eval.conftest import save_tiny_checkpoint


def write_shards(home, n=2):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = home / "base_data"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        text = [f"Document {i}.{j}: the quick brown fox jumps over the lazy dog. " * 20 for j in range(20)]
        pq.write_table(pa.table({"text": text}), d / f"shard_{i:05d}.parquet")


def tiny_cfg(home):
    cfg = load_config(profile="cpu-tiny", flags={"home": str(home)}).config
    cfg.eval.bpb_tokens = 4096
    cfg.eval.core_max_per_task = 6
    cfg.eval.speedrun_max_problems = 3
    cfg.eval.chat_max_tokens = 8
    cfg.train.device = "cpu"
    return cfg


def make_pipeline_home(home, run, phases=("base", "mid", "sft")):
    write_shards(home)
    for p in phases:
        save_tiny_checkpoint(home, p, seq_len=256, run=run)


def test_evals_with_bundle_land_in_metrics_and_manifest(home):
    make_pipeline_home(home, "r1")
    save_tiny_checkpoint(home, "sft", seq_len=256, run="other", step=20)  # a newer run's model is not evaluated
    make_bundle(home, rows=10)
    cfg = tiny_cfg(home)
    evals = run_speedrun_evals(cfg, "r1", progress=lambda s: None)
    assert evals["base_bpb"]["bpb"] > 0 and "base_core" in evals and "base_mini" not in evals
    assert set(evals["base_core"]["tasks"]) == {"arc_easy", "winograd", "lambada_openai"}
    for phase in ("mid", "sft"):
        assert evals[f"{phase}_chat"]["suite"] == "mini" and evals[f"{phase}_chat"]["score"] is not None
    manifest = json.loads((home / "runs" / "r1" / "manifest.json").read_text())
    assert manifest["evals"]["base_core"]["core"] == evals["base_core"]["core"]
    lines = [json.loads(x) for x in (home / "runs" / "r1" / "metrics.jsonl").read_text().splitlines()]
    assert {r["model"] for r in lines if r["phase"] == "eval"} == {"base", "mid", "sft"}
    assert evals["sft_chat"]["step"] == 10  # this run's SFT (the other run's is step 20)
    assert any("core" in r for r in lines)


def test_without_bundle_the_base_gets_the_mini_suite_and_missing_mid_is_recorded(home):
    make_pipeline_home(home, "r2", phases=("base", "sft"))
    evals = run_speedrun_evals(tiny_cfg(home), "r2", progress=lambda s: None)
    assert "base_core" not in evals and list(evals["base_mini"]["tasks"]) == ["quiz"]
    assert evals["base_mini"]["score"] == evals["base_mini"]["tasks"]["quiz"]["centered"]
    assert "fetch eval" in evals["base_mini"]["note"]
    assert evals["mid_chat"] == {"skipped": "no mid checkpoint"}


def test_no_base_checkpoint_is_an_error(home):
    write_shards(home)
    with pytest.raises(NanochatError) as e:
        run_speedrun_evals(tiny_cfg(home), "r3", progress=lambda s: None)
    assert "nanochat train base" in e.value.one_line()


def test_base_bpb_recorded_by_training_is_reused(home):
    from nanochat_cli.paths import Paths
    from nanochat_cli.runs import Manifest

    make_pipeline_home(home, "r4", phases=("base",))
    cfg = tiny_cfg(home)
    m = Manifest.create(Paths(home), "r4", cfg, ["base"])
    m.update_phase("base", status="done", step=10, metrics={"val_bpb": 1.5})
    evals = run_speedrun_evals(cfg, "r4", progress=lambda s: None)
    assert evals["base_bpb"]["bpb"] == 1.5 and evals["base_bpb"]["from"].startswith("base training")
    assert json.loads((home / "runs" / "r4" / "manifest.json").read_text())["phases"]["base"]["step"] == 10
