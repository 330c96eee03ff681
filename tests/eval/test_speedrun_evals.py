"""The speedrun's eval stage end to end on tiny checkpoints (offline cpu-tiny: bpb, base mini-suite, chat
mini-suite), then the report card built from what it recorded."""

from __future__ import annotations

import json

from tests.eval.conftest import save_tiny_checkpoint


def test_speedrun_evals_then_report(home):
    from nanochat_cli.config import load_config
    from nanochat_cli.eval.suite import run_speedrun_evals
    from nanochat_cli.report import write_report
    from tests.train.conftest import write_shards

    write_shards(home)
    save_tiny_checkpoint(home, "base")
    save_tiny_checkpoint(home, "sft")
    cfg = load_config(flags={"home": str(home), "eval.core_max_per_task": 5, "eval.chat_max_problems": 1,
                             "eval.bpb_tokens": 2048, "train.device_batch_size": 8, "train.threads": 1,
                             "sft.mixture": "packaged"}).config
    out = run_speedrun_evals(cfg, "test")
    json.dumps(out)  # the speedrun stores it as JSON
    assert out["base_bpb"] > 0 and "base_mini_suite" in out and out["sft_chat_suite"] == "mini"
    m = json.loads((home / "runs" / "test" / "manifest.json").read_text())
    assert {"bpb/base", "mini/base", "chat/sft"} <= set(m["evals"])
    md = write_report(cfg, "test").read_text()
    assert "mini-suite (not CORE)" in md and "bits per byte (val)" in md and "mini-suite score" in md
