"""Rendered jobs on a real Slurm (the two-node sandbox): the CLI runs under `srun torchrun` on both
nodes, mail notifications are sent, a failing preflight stops the job with exit 3, a USR2 drill
checkpoints, requeues and resumes into the same log, and the whole pipeline (canary, tokenizer, phases,
evals, report) survives a USR2 that lands in an eval step. Each test cancels its jobs and is time-bounded."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.slurm.conftest import job_state, make_venv, preempt_and_wait, wait_done, wait_for

# Each test submits real jobs and waits for them (30 s to a few minutes on two shared cores).
pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def ready_home(home: Path) -> None:
    """What `doctor --phase base` and `train base` need on disk: readable shards (the last is validation),
    several row groups each so both ranks get rows."""
    d = home / "base_data"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        text = [f"Shard {i}, document {j}: " + "the quick brown fox jumps over the lazy dog. " * 4 for j in range(40)]
        pq.write_table(pa.table({"text": text}), d / f"shard_{i:05d}.parquet", row_group_size=5)


def job_env(tmp_path: Path, venv: Path, **extra) -> dict[str, str]:
    return {"NANOCHAT_SLURM__VENV": str(venv), "NANOCHAT_SLURM__RDZV_HOST": "127.0.0.1",  # sandbox: loopback
            "NANOCHAT_SLURM__TIME": "00:10:00",
            "NANOCHAT_SLURM__SIGNAL_SECONDS": "60", "NANOCHAT_SLURM__CPUS_PER_TASK": "2", **extra}


def submit(run_cli, tmp_path, *args, env, jobs) -> list[dict]:
    r = run_cli("slurm", "submit", "--out", str(tmp_path / "jobs"), "--json", *args, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    jobs.extend(j["id"] for j in record["jobs"])
    return record["jobs"]


def test_two_node_job_runs_the_cli_under_srun_torchrun_and_mails(slurm_cluster, run_cli, home, tmp_path, jobs):
    (tmp_path / ".env.local").write_text("NANOCHAT_SLURM__MAIL_USER=ada@uni.example\n"
                                         "NANOCHAT_SLURM__MAIL_TYPE=BEGIN,END,FAIL\n")
    venv = make_venv(tmp_path / "venv")
    t0 = time.monotonic()
    [job] = submit(run_cli, tmp_path, "--nodes", "2", "--run", "two-node", "--command", "config show --json",
                   env=job_env(tmp_path, venv), jobs=jobs)
    st = wait_done(job["id"], timeout=180)
    wall = time.monotonic() - t0
    log_dir = home / "runs" / "two-node" / "logs"
    out = (log_dir / f"nanochat-{job['id']}.out").read_text()
    err = (log_dir / f"nanochat-{job['id']}.err").read_text()
    assert st["JobState"] == "COMPLETED" and st["ExitCode"] == "0:0", out + err
    assert "start on node[1-2] (2 node(s) x 1 proc), rendezvous 127.0.0.1:" in out
    # one `config show` per torchrun worker: 2 nodes x 1 process, each resolving the job's config
    assert out.count('"nnodes": 2') == 2 and out.count('"profile": "cpu-tiny"') == 2, out
    assert "all steps finished" in out
    mail = (slurm_cluster / "mail.log").read_text()
    assert re.search(rf"Job_id={job['id']} Name=nanochat Began.*ada@uni\.example", mail)
    assert re.search(rf"Job_id={job['id']} Name=nanochat Ended.*COMPLETED.*ada@uni\.example", mail)
    r = run_cli("slurm", "status", "--run", "two-node", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["jobs"][0]["state"] == "COMPLETED"
    print(f"two-node sandbox job: submit → COMPLETED in {wall:.1f} s")


def table_cell(out: str, row: str, column: int) -> str:
    """The text of one cell of the doctor's table in a log, its wrapped lines joined (rich wraps to the width)."""
    parts, inside = [], False
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if not cells:
            continue
        if cells[0]:
            inside = cells[0] == row
        if inside and len(cells) > column:
            parts.append(cells[column])
    return " ".join(p for p in parts if p)


def test_failing_doctor_stops_the_job_with_exit_3(slurm_cluster, run_cli, home, tmp_path, jobs):
    venv = make_venv(tmp_path / "venv")
    # a100x8 trains on 8 CUDA GPUs; the sandbox's GPUs are /dev/null, so the preflight must refuse.
    [job] = submit(run_cli, tmp_path, "--profile", "a100x8", "--run", "no-gpus",
                   env=job_env(tmp_path, venv, NANOCHAT_SLURM__MAIL_USER="ops@uni.example"), jobs=jobs)
    st = wait_done(job["id"], timeout=180)
    log_dir = home / "runs" / "no-gpus" / "logs"
    out = (log_dir / f"nanochat-{job['id']}.out").read_text()
    err = (log_dir / f"nanochat-{job['id']}.err").read_text()
    assert st["JobState"] == "FAILED" and st["ExitCode"] == "3:0", out + err
    assert "preflight failed (nanochat doctor exit 3)" in err and "no GPU time was spent" in err
    gpus = table_cell(out, "gpus", 2)
    assert "8 CUDA GPUs per node" in gpus and "this machine has 0" in gpus, out
    assert "train base" not in out.split("preflight failed")[0].split(
        "nanochat doctor")[-1]
    assert "base: nanochat" not in out  # no phase was launched
    mail = (slurm_cluster / "mail.log").read_text()
    assert re.search(rf"Job_id={job['id']} Name=nanochat Failed.*FAILED, ExitCode 3 ops@uni\.example", mail)


def test_per_phase_chain_is_afterok_so_a_failed_phase_holds_the_next(slurm_cluster, run_cli, home, tmp_path,
                                                                      jobs):
    venv = make_venv(tmp_path / "venv")
    # No base shards: base's preflight fails (exit 3), so mid must never start.
    base, mid = submit(run_cli, tmp_path, "--per-phase", "--phases", "base,mid", "--run", "chain",
                       env=job_env(tmp_path, venv), jobs=jobs)
    assert mid["after"] == base["id"]
    assert job_state(mid["id"]).get("Dependency", "").startswith(f"afterok:{base['id']}")
    st = wait_done(base["id"], timeout=180)
    assert st["JobState"] == "FAILED" and st["ExitCode"] == "3:0"
    st = wait_for(mid["id"], lambda s: s.get("Reason") == "DependencyNeverSatisfied", 60, "a dead dependency")
    assert st["JobState"] == "PENDING"
    r = run_cli("slurm", "status", "--json")  # the latest run: this one
    states = [(j["phases"], j["state"]) for j in json.loads(r.stdout)["jobs"]]
    assert states == [(["base"], "FAILED"), (["mid"], "PENDING")]


# A model small enough that a step takes about a second on two shared cores (the cpu-tiny profile's
# d4 takes ~30 s per step there): 1 block of width 64, 32-token rows, batch 2 per process, 2 processes.
TINY = {"NANOCHAT_TOKENIZER__KIND": "byte", "NANOCHAT_TRAIN__COMPILE": "off", "NANOCHAT_MODEL__DEPTH": "1",
        "NANOCHAT_MODEL__ASPECT_RATIO": "64", "NANOCHAT_MODEL__HEAD_DIM": "64", "NANOCHAT_MODEL__SEQ_LEN": "32",
        "NANOCHAT_TRAIN__DEVICE_BATCH_SIZE": "2", "NANOCHAT_TRAIN__TOTAL_BATCH_SIZE": "128",
        "NANOCHAT_TRAIN__EVAL_TOKENS": "128", "NANOCHAT_TRAIN__EVAL_EVERY": "0", "NANOCHAT_TRAIN__SAVE_EVERY": "0",
        "NANOCHAT_TRAIN__NUM_ITERATIONS": "40"}
TRAINING_ONLY = {"NANOCHAT_SLURM__CANARY": "false", "NANOCHAT_SLURM__EVALS": "false"}
# 40 steps of ~0.1 s: the USR2 sent at step 3 lands mid-run even on a loaded machine (with 10 steps it once
# landed after the last one; the job then had to finish cleanly, see test_resume_scope.py).


def _losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.mark.slow
def test_real_training_drill_resumes_with_the_same_losses(slurm_cluster, run_cli, home, tmp_path, jobs):
    """Two nodes × 1 gloo process train for real: an uninterrupted reference job, then the same job hit by
    USR2 mid-run; after the requeue `nanochat resume` must reproduce the reference losses step for step."""
    venv = make_venv(tmp_path / "venv")
    ref_home = tmp_path / "ref-home"
    ready_home(ref_home)
    ready_home(home)
    env = job_env(tmp_path, venv, **TINY, **TRAINING_ONLY)  # this drill is about training: no canary, evals
    [ref] = submit(run_cli, tmp_path, "--nodes", "2", "--phases", "base", "--run", "reference",
                   env={**env, "NANOCHAT_HOME": str(ref_home)}, jobs=jobs)
    st = wait_done(ref["id"], timeout=300)
    ref_err = (ref_home / "runs" / "reference" / "logs" / f"nanochat-{ref['id']}.err").read_text()
    assert st["JobState"] == "COMPLETED", ref_err[-3000:]
    reference = _losses(ref_home / "runs" / "reference")
    assert sorted(reference) == list(range(1, 41))

    [job] = submit(run_cli, tmp_path, "--nodes", "2", "--phases", "base", "--run", "drill", env=env, jobs=jobs)
    jid = job["id"]
    err_file = home / "runs" / "drill" / "logs" / f"nanochat-{jid}.err"
    metrics = home / "runs" / "drill" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while len(metrics.read_text().splitlines() if metrics.exists() else []) < 3:  # one line per step
        assert job_state(jid).get("JobState") in ("PENDING", "RUNNING"), err_file.read_text()[-3000:]
        assert time.monotonic() < deadline, "training never reached step 3"
        time.sleep(0.5)
    st = preempt_and_wait(jid, requeue_timeout=120, done_timeout=300)
    out = (home / "runs" / "drill" / "logs" / f"nanochat-{jid}.out").read_text()
    err = err_file.read_text()
    errors = "\n".join(ln for ln in err.splitlines() if ln.startswith("Error: "))  # our one-line errors
    assert st["JobState"] == "COMPLETED" and st["Restarts"] == "1", errors + out[-2000:] + err[-3000:]
    stopped = int(re.search(r"base: stopped by SIGUSR2 at step (\d+); checkpoint \S+/runs/drill/checkpoints/base/step_0*\1 ", err).group(1))
    assert 3 <= stopped < 40
    assert "USR2: time limit or preemption is near" in out and f"requeueing job {jid}" in out
    second = out.split("restart=1]", 1)[1]  # the requeued run appended to the same file
    assert "base: restarted after a requeue: nanochat resume --phase base --run drill" in second
    assert "all steps finished" in second
    assert sorted(p.name for p in err_file.parent.iterdir()) == [f"nanochat-{jid}.err", f"nanochat-{jid}.out"]
    manifest = json.loads((home / "runs" / "drill" / "manifest.json").read_text())
    assert manifest["phases"]["base"]["status"] == "done" and manifest["phases"]["base"]["step"] == 40
    drill = _losses(home / "runs" / "drill")
    assert drill == reference  # every step, before and after the requeue, bit for bit


# The whole pipeline, shrunk: a BPE tokenizer trained by the job, a few steps per phase, a handful of eval
# problems. On two nodes × 1 gloo process.
PIPELINE = {**TINY, "NANOCHAT_TOKENIZER__KIND": "bpe", "NANOCHAT_TOKENIZER__VOCAB_SIZE": "300",
            "NANOCHAT_TOKENIZER__TRAIN_CHARS": "20000", "NANOCHAT_TRAIN__NUM_ITERATIONS": "4",
            "NANOCHAT_MID__NUM_ITERATIONS": "2", "NANOCHAT_MID__EVAL_TOKENS": "128", "NANOCHAT_SFT__NUM_ITERATIONS": "2",
            "NANOCHAT_SFT__DEVICE_BATCH_SIZE": "2", "NANOCHAT_SFT__EXAMPLES_PER_STEP": "4",
            "NANOCHAT_SFT__EVAL_STEPS": "1", "NANOCHAT_EVAL__BPB_TOKENS": "128", "NANOCHAT_EVAL__CHAT_MAX_PROBLEMS": "6",
            # long enough (a few seconds per model) that a USR2 sent when eval-mid starts lands inside it
            "NANOCHAT_EVAL__CHAT_MAX_TOKENS": "48",
            "NANOCHAT_RL__NUM_ITERATIONS": "2", "NANOCHAT_RL__EVAL_PROBLEMS": "2", "NANOCHAT_RL__MAX_NEW_TOKENS": "16"}


@pytest.mark.slow
def test_the_job_runs_the_whole_pipeline_and_a_usr2_in_an_eval_step_requeues_it(slurm_cluster, run_cli, home,
                                                                                  tmp_path, jobs):
    """doctor → canary → tokenizer train + eval → base → mid → SFT → evals → report in one 2-node job; a USR2
    while `eval chat -i mid` runs requeues the job, and the second run skips every finished step, runs that
    eval again and finishes the pipeline."""
    venv = make_venv(tmp_path / "venv")
    assert run_cli("data", "fetch", "base").returncode == 0  # cpu-tiny's embedded corpus, as on a login node
    [job] = submit(run_cli, tmp_path, "--nodes", "2", "--run", "pipeline", env=job_env(tmp_path, venv, **PIPELINE),
                   jobs=jobs)
    jid = job["id"]
    out_file = home / "runs" / "pipeline" / "logs" / f"nanochat-{jid}.out"
    err_file = out_file.with_suffix(".err")
    deadline = time.monotonic() + 400
    while "eval-mid: nanochat eval chat -i mid" not in (out_file.read_text() if out_file.exists() else ""):
        st = job_state(jid)
        assert st.get("JobState") in ("PENDING", "RUNNING"), (out_file.read_text() + err_file.read_text())[-4000:]
        assert time.monotonic() < deadline, "the job never reached the mid eval"
        time.sleep(0.2)
    st = preempt_and_wait(jid, requeue_timeout=180, done_timeout=400)
    out, err = out_file.read_text(), err_file.read_text()
    assert st["JobState"] == "COMPLETED" and st["Restarts"] == "1", (out + err)[-4000:]
    first, second = out.split("restart=1]", 1)
    for step in ("canary", "tokenizer", "tokenizer-eval", "base", "mid", "sft", "rl", "eval-base"):
        assert f"] {step}: finished" in first, step
        assert f"{step}: already done for run pipeline; skipped" in second, step
    assert "USR2: time limit or preemption is near" in first and "eval-mid: finished" not in first
    assert "eval-mid: restarted after a requeue: nanochat eval chat -i mid --run pipeline" in second
    for step in ("eval-mid", "eval-sft", "eval-rl", "report"):
        assert f"] {step}: finished" in second, step
    assert "all steps finished" in second
    # the canary trained on both nodes (its report, from rank 0)
    assert re.search(r"canary: 20 steps of d1 .* on 2 × \S+ \(gloo\)", first) and "ranks agree yes" in first
    assert "resume      equal" in first and "(falls)" in first
    manifest = json.loads((home / "runs" / "pipeline" / "manifest.json").read_text())
    assert {manifest["phases"][p]["status"] for p in ("base", "mid", "sft", "rl")} == {"done"}
    assert {"base_bpb", "mid_chat", "sft_chat", "rl_chat"} <= set(manifest["evals"])
    assert (home / "runs" / "pipeline" / "report.md").is_file()
    assert list((home / "tokenizers").glob("*/tokenizer.json"))  # trained by the job's tokenizer step
