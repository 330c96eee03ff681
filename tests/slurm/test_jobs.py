"""`nanochat slurm submit|status` without a cluster: dry runs, and the errors when Slurm is absent or a
run has no jobs."""

from __future__ import annotations

import json

import pytest


def test_submit_dry_run_shows_the_afterok_chain_and_queues_nothing(run_cli, home, tmp_path):
    r = run_cli("slurm", "submit", "--per-phase", "--from", "mid", "--run", "chain", "--dry-run",
                "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("sbatch --parsable ") and "nanochat-mid.sbatch" in lines[0]
    assert "--dependency=afterok:<id of nanochat-mid> " in lines[1] and "nanochat-sft.sbatch" in lines[1]
    assert not (home / "runs" / "chain" / "slurm-jobs.json").exists()
    assert not (tmp_path / "o").exists() and not (home / "runs").exists()  # a dry run writes nothing at all


def test_submit_without_slurm_is_a_preflight_error(run_cli, tmp_path):
    r = run_cli("slurm", "submit", "--out", str(tmp_path / "o"), env={"PATH": str(tmp_path)})
    assert r.returncode == 3 and "sbatch" in r.stderr and "login node" in r.stderr
    assert (tmp_path / "o" / "nanochat.sbatch").is_file()  # rendered, so it can be copied to the cluster


def test_status_of_an_unknown_run_is_exit_2(run_cli, home):
    r = run_cli("slurm", "status")
    assert r.returncode == 2 and "nanochat slurm submit" in r.stderr
    (home / "runs" / "r1").mkdir(parents=True)
    r = run_cli("slurm", "status", "--run", "r1")
    assert r.returncode == 2 and "r1" in r.stderr


def test_status_reads_the_record_and_asks_slurm(run_cli, home, tmp_path):
    # A stand-in squeue/scontrol on PATH: status must join the record with what Slurm reports.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/sh\necho '11|RUNNING|1:02|12:00:00|node[1-2]'\n")
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 'JobId=12 JobState=PENDING Reason=Dependency "
                                      "ExitCode=0:0 RunTime=00:00:00 TimeLimit=12:00:00 Restarts=0'\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    run = home / "runs" / "r2"
    run.mkdir(parents=True)
    (run / "slurm-jobs.json").write_text(json.dumps({"run": "r2", "log_dir": str(run / "logs"), "jobs": [
        {"id": "11", "script": str(run / "nanochat-base.sbatch"), "phases": ["base"]},
        {"id": "12", "script": str(run / "nanochat-mid.sbatch"), "phases": ["mid"], "after": "11"}]}))
    r = run_cli("slurm", "status", "--json", env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    jobs = json.loads(r.stdout)["jobs"]
    assert jobs[0]["state"] == "RUNNING" and jobs[0]["log"] == str(run / "logs" / "nanochat-base-11.out")
    assert jobs[1]["state"] == "PENDING" and jobs[1]["reason"] == "Dependency"


@pytest.mark.parametrize("text", ['{"run": "r3", "log_dir": "/x", "jobs": [{"id": "1", "scr', "", "\udcff",
                                  "[1, 2]", '{"run": "r3", "jobs": [{"id": "1"}]}', '{"log_dir": "/x", "jobs": 3}'])
def test_a_torn_or_foreign_job_record_is_one_line_naming_the_file(run_cli, home, text):
    run = home / "runs" / "r3"
    run.mkdir(parents=True)
    (run / "slurm-jobs.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    r = run_cli("slurm", "status", "--run", "r3")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert str(run / "slurm-jobs.json") in r.stderr and "squeue" in r.stderr
