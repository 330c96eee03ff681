"""`nanochat speedrun` end to end on cpu-tiny data, offline, shrunk to seconds: every stage runs, the summary
names the chat command, a SIGTERM during base training is recorded, and a second call continues exactly
there (finished stages kept, nothing skipped)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env, in_netns

SMALL = """
[model]
seq_len = 64
[tokenizer]
vocab_size = 320
train_chars = 200_000
[train]
device_batch_size = 4
total_batch_size = 256
num_iterations = {base}
eval_every = 0
eval_tokens = 256
save_every = 2
threads = 1
[mid]
num_iterations = 2
eval_tokens = 256
[sft]
num_iterations = 2
device_batch_size = 4
examples_per_step = 4
eval_steps = 1
[rl]
num_iterations = 2
problems_per_step = 1
samples_per_problem = 2
device_batch_size = 2
max_new_tokens = 4
eval_problems = 1
eval_samples = 2
[eval]
bpb_tokens = 256
speedrun_max_problems = 1
chat_max_tokens = 4
"""


def _record(home: Path) -> dict:
    (rec,) = list((home / "runs").glob("*/speedrun.json"))
    return json.loads(rec.read_text())


@pytest.mark.slow
def test_speedrun_end_to_end_and_continue_after_sigterm(home, tmp_path):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL.format(base=400))
    cmd = in_netns([sys.executable, "-m", "nanochat_cli", "speedrun", "--config", str(cfg)])
    env = cli_env({"NANOCHAT_HOME": str(home)})
    # 1) interrupt during base training: SIGTERM -> checkpoint at the next step, stage recorded as interrupted
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    seen = []
    for line in p.stderr:
        seen.append(line)
        if line.startswith("base step ") or time.time() > deadline:
            break
    assert any(ln.startswith("base step ") for ln in seen), "".join(seen)[-2000:]
    p.send_signal(signal.SIGTERM)  # unshare and sh exec into python, so this pid is the speedrun itself
    out, err = p.communicate(timeout=300)
    assert p.returncode == 75, err[-2000:]
    rec = _record(home)["stages"]
    assert rec["data"]["status"] == rec["tokenizer"]["status"] == "done"
    assert rec["base"]["status"] == "interrupted" and rec["mid"]["status"] == "pending"
    tokenizer_seconds = rec["tokenizer"]["seconds"]
    # 2) run again: continues the same run, base resumes from its checkpoint, later stages run
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "speedrun continues" in r.stderr and "resumed from" in r.stderr
    rec = _record(home)["stages"]
    assert rec["tokenizer"]["seconds"] == tokenizer_seconds  # finished stages are not redone
    assert all(v["status"] == "done" for v in rec.values()), rec
    assert "chat:   nanochat chat -i rl" in r.stdout
    assert rec["rl"]["result"]["step"] == 2
    report = Path(rec["report"]["result"]["report"])
    assert report.is_file() and "report card" in report.read_text()
    # the SFT model answers
    c = subprocess.run(in_netns([sys.executable, "-m", "nanochat_cli", "chat", "--config", str(cfg), "-p", "hi",
                                 "--max-tokens", "4"]), capture_output=True, text=True, env=env, timeout=300)
    assert c.returncode == 0, c.stderr[-1000:]


def test_dry_run_prints_the_plan_with_estimates(run_cli):
    r = run_cli("speedrun", "--dry-run", "--profile", "h100x8")
    assert r.returncode == 0, r.stderr
    for word in ("data", "tokenizer", "base", "mid", "sft", "rl", "eval", "report", "21,400 steps", "cost",
                 "gsm8k problems"):
        assert word in r.stdout
    r = run_cli("speedrun", "--dry-run")
    assert "embedded corpus" in r.stdout and "cost" not in r.stdout and "arithmetic problems" in r.stdout


def test_a_record_from_before_the_rl_stage_loads(tmp_path):
    """A finished speedrun recorded before RL existed is not continued because of it; an unfinished one runs it."""
    from nanochat_cli.paths import atomic_write_json
    from nanochat_cli.speedrun import STAGES, SpeedrunRecord

    old = [s for s in STAGES if s != "rl"]
    atomic_write_json(tmp_path / "speedrun.json", {"stages": {s: {"status": "done"} for s in old}})
    assert all(SpeedrunRecord(tmp_path).status(s) == "done" for s in STAGES)
    atomic_write_json(tmp_path / "speedrun.json", {"stages": {s: {"status": "pending"} for s in old}})
    assert SpeedrunRecord(tmp_path).status("rl") == "pending"


def test_multi_process_speedrun_names_the_launcher(run_cli):
    r = run_cli("speedrun", "--nproc", "2")
    assert r.returncode == 2 and "torchrun" in r.stderr and "Traceback" not in r.stderr
