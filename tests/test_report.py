"""`nanochat report`: the markdown card from a run's manifest, metrics, speedrun record and tokenizer eval,
with PNG plots; --json; clear errors when there is no run."""

from __future__ import annotations

import json

from nanochat_cli.config_sources import load_config
from nanochat_cli.paths import Paths, atomic_write_json
from tests.conftest import needs_read_only_mount


def make_run(home, run_id="run-a", profile="cpu-tiny", evals=True):
    from nanochat_cli.runs import Manifest

    cfg = load_config(profile=profile, flags={"home": str(home)}).config
    m = Manifest.create(Paths(home), run_id, cfg, ["base", "mid", "sft"])
    for i, phase in enumerate(("base", "mid", "sft")):
        m.update_phase(phase, status="done", step=10 * (i + 1), train_seconds=12.5 * (i + 1))
    if evals:
        m.update(lambda data: data.__setitem__("evals", {
            "base_bpb": {"bpb": 1.234, "step": 10},
            "base_core": {"core": 0.05, "max_per_task": 100, "tasks": {
                "arc_easy": {"type": "multiple_choice", "shots": 10, "rows": 100, "accuracy": 0.3, "centered": 0.0667}}},
            "mid_chat": {"suite": "mini", "score_name": "mini-suite score", "score": 0.1,
                         "tasks": {"quiz": {"accuracy": 0.4}, "arithmetic": {"accuracy": 0.05}},
                         "samples": [{"prompt": "What is 2+3?\nThanks", "completion": "`5`", "correct": True}]},
            "sft_chat": {"skipped": "no sft checkpoint"}}))
    run_dir = Paths(home).run_dir(run_id)
    lines = []
    for phase, n in (("base", 10), ("mid", 20)):
        for s in range(1, n + 1):
            lines.append({"phase": phase, "step": s, "loss": 5.0 - s * 0.1})
        lines.append({"phase": phase, "step": n, "val_bpb": 2.0 - n * 0.01})
    lines.append({"phase": "base", "step": 10, "samples": ["The capital of France is Paris"]})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"cut":')
    atomic_write_json(run_dir / "speedrun.json", {"stages": {"data": {"status": "done", "seconds": 3.0},
                                                             "eval": {"status": "done", "seconds": 20.0}}})
    atomic_write_json(run_dir / "tokenizer_eval.json", {
        "tokenizers": ["ours", "gpt2"], "vocab_sizes": {"ours": 4096, "gpt2": 50257}, "notes": [],
        "texts": [{"text": "news", "bytes": 946, "results": {"ours": {"bytes_per_token": 2.642, "tokens": 358},
                                                            "gpt2": {"bytes_per_token": 4.637, "tokens": 204}}}]})
    return cfg, run_dir


def test_report_markdown_and_plots(home):
    from nanochat_cli.report import write_report

    cfg, run_dir = make_run(home)
    path = write_report(cfg, "run-a")
    text = path.read_text()
    assert path == run_dir / "report.md"
    for needle in ("# nanochat report card: run-a", "## Environment", "torch", "1.2340", "**CORE: 0.0500**",
                   "| arc_easy | multiple_choice | 10 | 100 | 0.3000 | 0.0667 |", "| quiz | 0.4000 |",
                   "mini-suite score", "sft: skipped (no sft checkpoint)", "![loss](loss.png)", "![val_bpb](bpb.png)",
                   "The capital of France is Paris", "What is 2+3? ⏎ Thanks", '| news | 946 | 2.642 | 4.637 |', "gpt2 (50257)", "| base | done | 10 |"):
        assert needle in text, needle
    for png in ("loss.png", "bpb.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Estimated cost" not in text  # a CPU profile has no GPU cost


def test_gpu_profile_gets_a_cost_and_tokens(home):
    from nanochat_cli.report import build_report

    cfg, _ = make_run(home, "gpu-run", profile="a100x8", evals=False)
    data = build_report(cfg, "gpu-run")
    assert data["cost"]["gpu"] == "a100" and data["cost"]["gpus"] == 8 and data["cost"]["dollars"] > 0
    assert data["tokens_seen"]["base"] == 10 * cfg.train.total_batch_size


def test_cli_latest_run_json_and_markdown(run_cli, home):
    make_run(home, "older")
    make_run(home, "newer")
    r = run_cli("report", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["run_id"] == "newer" and doc["evals"]["base_bpb"]["bpb"] == 1.234
    r = run_cli("report", "--run", "older")
    assert r.returncode == 0 and r.stdout.strip().endswith("older/report.md")


def test_cli_errors(run_cli, home):
    r = run_cli("report")
    assert r.returncode == 2 and "nanochat speedrun" in r.stderr
    make_run(home)
    r = run_cli("report", "--run", "nope")
    assert r.returncode == 2 and "no run named 'nope'" in r.stderr and "run-a" in r.stderr


def test_standalone_tokenizer_eval_is_shown_for_runs_trained_with_that_tokenizer(home):
    """The eval saved with a tokenizer version is shown for runs whose checkpoints name that version — by its
    fingerprint, or by the ranks sha256 checkpoints from before versions recorded — and never for others."""
    from nanochat_cli.report import build_report
    from nanochat_cli.tokenizer import store
    from nanochat_cli.tokenizer.bpe import SPLIT_PATTERN, ranks_to_file_bytes
    from nanochat_cli.runs import Manifest

    cfg, run_dir = make_run(home, "standalone", evals=False)
    (run_dir / "tokenizer_eval.json").unlink()  # not a speedrun: only `nanochat tokenizer eval` was run
    paths = Paths(home)
    versions = []
    for n in (300, 301):  # two versions; the second was trained (and evaluated) later
        ranks = {bytes([b]): b for b in range(256)} | {bytes([97, 98 + i]): 256 + i for i in range(n - 256)}
        data = ranks_to_file_bytes(ranks)
        meta = store.new_meta(data, len(ranks), SPLIT_PATTERN, {})
        store.install_version(paths, meta, {store.TOKEN_FILE: data})
        store.save_eval(paths, meta["fingerprint"], {"tokenizers": ["ours"], "fingerprint": meta["fingerprint"],
                                                     "texts": [], "notes": []})
        versions.append(meta)
    assert build_report(cfg, "standalone")["tokenizer"] is None  # no checkpoint says which tokenizer trained it
    ckpt = home / "runs" / "standalone" / "checkpoints" / "base" / "step_000010"
    ckpt.mkdir(parents=True)
    m = Manifest.load(run_dir)
    m.update_phase("base", checkpoint=str(ckpt))
    atomic_write_json(ckpt / "meta.json", {"tokenizer": {"fingerprint": "ab" * 32}})
    assert build_report(cfg, "standalone")["tokenizer"] is None  # trained with a tokenizer that is not stored
    for key in ("fingerprint", "ranks_sha256"):
        atomic_write_json(ckpt / "meta.json", {"tokenizer": {"fingerprint": versions[0][key]}})
        assert build_report(cfg, "standalone")["tokenizer"]["fingerprint"] == versions[0]["fingerprint"]
    atomic_write_json(ckpt / "meta.json", {"tokenizer": {"fingerprint": None}})  # a byte-level run
    assert build_report(cfg, "standalone")["tokenizer"] is None


@needs_read_only_mount
def test_a_read_only_run_is_exit_2_naming_stdout_and_stdout_prints_it(run_cli, home):
    """Saving needs a writable run directory; reading it does not: --stdout and --json print, write nothing."""
    _, run_dir = make_run(home)
    r = run_cli("report", read_only_dir=home)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot write to the run directory" in r.stderr and "nanochat report --stdout" in r.stderr
    r = run_cli("report", "--stdout", read_only_dir=home)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("# nanochat report card: run-a") and "| quiz | 0.4000 |" in r.stdout
    assert "![loss]" not in r.stdout  # no plot files to point at
    r = run_cli("report", "--json", read_only_dir=home)
    assert r.returncode == 0 and json.loads(r.stdout)["run_id"] == "run-a"
    assert not (run_dir / "report.md").exists() and not (run_dir / "loss.png").exists()


def test_json_and_stdout_together_is_a_usage_error(run_cli, home):
    make_run(home)
    r = run_cli("report", "--json", "--stdout")
    assert r.returncode == 2 and "cannot be combined" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_skills_section_shows_each_model_with_problem_counts_answers_and_the_rl_curve(home):
    """Per-task accuracies of base/mid/SFT/RL with problem counts, answers with their calculator calls, and
    RL's held-out pass@1 curve (table + rl.png)."""
    from nanochat_cli.report import write_report
    from nanochat_cli.runs import Manifest

    cfg, run_dir = make_run(home, evals=False)
    call = "3 boxes of 4 each: 3*4=<|python_start|>3*4<|python_end|><|output_start|>12<|output_end|>12.\n#### 12"
    tasks = lambda a, s: {"arithmetic": {"accuracy": a, "problems": 200}, "spellingbee": {"accuracy": s, "problems": 100}}
    Manifest.load(run_dir).update(lambda d: d.__setitem__("evals", {
        "base_mini": {"score_name": "mini-suite (quiz) centered", "score": 0.1,
                      "tasks": {"quiz": {"accuracy": 0.3, "problems": 100}}},
        "sft_chat": {"suite": "mini", "score_name": "mini-suite score", "score": 0.4, "tasks": tasks(0.55, 0.6),
                     "samples": [{"task": "arithmetic", "prompt": "There are 3 boxes with 4 pens in each box.",
                                  "completion": call, "correct": True}]},
        "rl_chat": {"suite": "mini", "score_name": "mini-suite score", "score": 0.5, "tasks": tasks(0.7, 0.61)}}))
    rows = [{"phase": "rl", "step": s, "pass@1": p, "pass@8": 0.9, "eval_problems": 100} for s, p in ((0, 0.4), (20, 0.6))]
    rows[-1]["rl_samples"] = [{"prompt": "Ava has 2 cats", "completion": "#### 3", "correct": False}]
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write("\n" + "".join(json.dumps(r) + "\n" for r in rows))
    text = write_report(cfg, "run-a").read_text()
    for needle in ("## Skills", "| task | base | sft | rl |", "| arithmetic | — | 0.5500 (200) | 0.7000 (200) |",
                   "| quiz | 0.3000 (100) | — | — |", "<|python_start|>3*4<|python_end|><|output_start|>12",
                   "| 20 | 0.6000 | 0.9000 | 100 |", "pass@1 0.4000 at step 0 → 0.6000 at step 20 (+20.0 points)",
                   "![rl pass@k](rl.png)", "rl step 20, held-out: **Ava has 2 cats**"):
        assert needle in text, needle
    assert (run_dir / "rl.png").read_bytes()[:4] == b"\x89PNG"
