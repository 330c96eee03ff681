"""`nanochat report`: markdown with every section, PNG plots from metrics.jsonl, --json with the same data."""

from __future__ import annotations

import json

from nanochat_cli.paths import Paths


def _fake_run(home):
    from nanochat_cli.config import load_config
    from nanochat_cli.train.manifest import Manifest

    cfg = load_config(flags={"home": str(home)}).config
    m = Manifest.create(Paths(home), "r1", cfg, ["base", "sft"])
    m.update_phase("base", status="done", step=20, train_seconds=12.5, num_iterations=20)
    m.update_phase("sft", status="done", step=5, train_seconds=3.0, num_iterations=5)
    m.data["evals"] = {"mini/base": {"mini_suite": 0.12, "step": 20, "tasks": {}},
                       "bpb/base": {"bpb": 2.5, "step": 20},
                       "chat/sft": {"suite": "mini", "score_name": "mini-suite score", "score": 0.05, "step": 5,
                                    "tasks": {"Quiz": {"accuracy": 0.3}, "HumanEval": {"accuracy": 0.0}},
                                    "samples": [{"prompt": "What is 2+3?", "completion": "5", "correct": 1}]}}
    m.save()
    with open(m.run_dir / "metrics.jsonl", "w") as f:
        for s in range(1, 21):
            f.write(json.dumps({"phase": "base", "step": s, "loss": 5 - s / 10, "tok_per_s": 1000.0, "dt_ms": 4096.0}) + "\n")
            if s % 10 == 0:
                f.write(json.dumps({"phase": "base", "step": s, "val_bpb": 3 - s / 20}) + "\n")
        f.write(json.dumps({"phase": "base", "step": 20, "samples": ["The capital of France is"]}) + "\n")
    return m.run_dir


def test_report_markdown_plots_json(run_cli, home):
    run_dir = _fake_run(home)
    r = run_cli("report", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["run_id"] == "r1" and d["phases"]["base"]["tokens_seen"] == 20 * 4096
    assert d["evals"]["bpb/base"]["bpb"] == 2.5
    md = (run_dir / "report.md").read_text()
    for needle in ("## Environment", "torch", "## Training phases", "mini-suite (not CORE)", "0.1200", "2.5000",
                   "## Chat evals", "| Quiz | 0.3000 |", "**mini-suite score** | 0.0500", "![Training loss](loss.png)",
                   "![Validation bits per byte](bpb.png)", "The capital of France", "No tokenizer comparison", "*What is 2+3?* → `5`"):
        assert needle in md, needle
    for png in ("loss.png", "bpb.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_runs_exits_2(run_cli):
    r = run_cli("report")
    assert r.returncode == 2 and "Traceback" not in r.stderr
