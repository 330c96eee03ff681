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
    assert "embedded corpus" in r.stdout and "cost" not in r.stdout and "torchrun" not in r.stdout
    assert "arithmetic problems" in r.stdout


def test_a_record_from_before_the_rl_stage_loads(tmp_path):
    """A finished speedrun recorded before RL existed is not continued because of it; an unfinished one runs it."""
    from nanochat_cli.paths import atomic_write_json
    from nanochat_cli.speedrun import STAGES, SpeedrunRecord

    old = [s for s in STAGES if s != "rl"]
    atomic_write_json(tmp_path / "speedrun.json", {"stages": {s: {"status": "done"} for s in old}})
    assert all(SpeedrunRecord(tmp_path).status(s) == "done" for s in STAGES)
    atomic_write_json(tmp_path / "speedrun.json", {"stages": {s: {"status": "pending"} for s in old}})
    assert SpeedrunRecord(tmp_path).status("rl") == "pending"


def test_gpu_dry_run_shows_the_torchrun_stages_and_a_real_run_refuses_without_gpus(run_cli):
    r = run_cli("speedrun", "--dry-run", "--profile", "a100x8", "--run", "d20")
    assert r.returncode == 0, r.stderr
    launched = [ln.split("on 8 processes: ")[1] for ln in r.stdout.splitlines() if "on 8 processes: " in ln]
    assert launched == [f"torchrun --standalone --nproc_per_node=8 -m -- nanochat_cli speedrun --profile a100x8 "
                        f"--stage {s} --run d20" for s in ("base", "mid", "sft", "rl", "eval")]
    r = run_cli("speedrun", "--profile", "a100x8")  # before the data stage downloads 24 GB
    assert r.returncode == 3 and len(r.stderr.splitlines()) == 1 and "8 CUDA GPUs per node" in r.stderr
    r = run_cli("speedrun", "--stage", "base")
    assert r.returncode == 2 and "--stage needs the run" in r.stderr


# SMALL for 2 processes: every batch splits over 2 ranks.
SMALL2 = (SMALL.replace("total_batch_size = 256", "total_batch_size = 512").replace("examples_per_step = 4", "examples_per_step = 8")
          .replace("eval_tokens = 256", "eval_tokens = 512").replace("bpb_tokens = 256", "bpb_tokens = 512")
          .replace("problems_per_step = 1", "problems_per_step = 2"))


@pytest.mark.slow
@pytest.mark.dist
def test_two_process_speedrun_launched_and_under_torchrun(run_cli, home, tmp_path):
    """`speedrun --nproc 2` runs data and tokenizer here and each training/eval stage on 2 gloo processes
    (under its run lock); `torchrun … speedrun` (already 2 processes) runs the same stages with rank 0
    conducting. Both end with the same record and the chat command."""
    cfg = tmp_path / "small2.toml"
    cfg.write_text(SMALL2.format(base=2))
    r = run_cli("speedrun", "--nproc", "2", "--config", str(cfg), "--run", "launched", netns=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "chat:   nanochat chat -i rl --run launched" in r.stdout and "Error" not in r.stderr
    rec = json.loads((home / "runs" / "launched" / "speedrun.json").read_text())["stages"]
    assert all(v["status"] == "done" for v in rec.values()), rec
    assert rec["base"]["result"]["step"] == 2 and rec["eval"]["result"]["mid_chat"]["step"] == 2
    meta = json.loads((home / "runs" / "launched" / "checkpoints" / "sft" / "step_000002" / "meta.json").read_text())
    assert meta["world_size"] == 2  # trained on both processes
    assert "world 2" in r.stderr and "speedrun: ✓ data" in r.stderr

    cmd = in_netns([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "--",
                    "nanochat_cli", "speedrun", "--config", str(cfg), "--run", "under-torchrun", "--json"])
    t = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=cli_env({"NANOCHAT_HOME": str(home)}))
    assert t.returncode == 0, t.stderr[-3000:]
    result = json.loads(t.stdout)  # one document: rank 0's
    assert result["status"] == "done" and result["chat_command"] == "nanochat chat -i rl --run under-torchrun"
    assert result["stages"]["tokenizer"]["result"]["train"]["kept"] is True  # the default from the first run
    meta = json.loads((home / "runs" / "under-torchrun" / "checkpoints" / "base" / "step_000002" /
                       "meta.json").read_text())
    assert meta["world_size"] == 2
