"""Submit rendered scripts with `sbatch` (per-phase scripts chained by `--dependency=afterok`) and show
a run's jobs from `squeue`/`scontrol`.

The job ids are recorded in `<home>/runs/<run>/slurm-jobs.json` (atomic write after every sbatch, so a
chain that fails half-way still records what was queued). Status asks squeue first (one call for all
jobs) and scontrol only for jobs that left the queue (Slurm keeps them ~MinJobAge, 5 min by
default); older jobs show as `gone` with their log path. No sacct: many clusters restrict it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from nanochat_cli.errors import NanochatError, PreflightError, UsageError
from nanochat_cli.paths import Paths, atomic_write_json


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise PreflightError(f"`{name}` is not on PATH: this machine is not a Slurm login node",
                             "run this on the cluster's login node (or `nanochat slurm render` here and copy "
                             "the scripts)")
    return path


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NanochatError(f"`{' '.join(cmd)}` did not answer within {timeout:.0f} s",
                            "check the Slurm controller (`scontrol ping`) and try again") from None


def submit(paths: Paths, run: str, scripts: list[Path], phases: list[tuple[str, ...]], log_dir: Path,
           dry_run: bool = False) -> dict:
    """sbatch each script in order; each after the first waits for the previous one (afterok)."""
    record = {"run": run, "log_dir": str(log_dir), "jobs": [],
              "submitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    sbatch = "sbatch" if dry_run else _tool("sbatch")
    prev = None
    for script, job_phases in zip(scripts, phases):
        cmd = [sbatch, "--parsable"] + ([f"--dependency=afterok:{prev}"] if prev else []) + [str(script)]
        if dry_run:
            record["jobs"].append({"id": None, "script": str(script), "phases": list(job_phases), "command": cmd})
            prev = f"<id of {Path(script).stem}>"
            continue
        r = _run(cmd)
        if r.returncode != 0:
            done = ", ".join(j["id"] for j in record["jobs"]) or "none"
            raise NanochatError(f"sbatch {script} failed (exit {r.returncode}): {r.stderr.strip()[:500]}; "
                                f"jobs already queued: {done}",
                                "fix the cause, `scancel` the queued jobs if any, then submit again")
        job_id = r.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise NanochatError(f"sbatch printed {r.stdout.strip()!r} instead of a job id")
        record["jobs"].append({"id": job_id, "script": str(script), "phases": list(job_phases),
                               "after": prev})
        atomic_write_json(paths.slurm_jobs(run), record)
        prev = job_id
    return record


def latest_run(paths: Paths) -> str:
    """The run whose jobs were submitted last (by the record's mtime)."""
    records = sorted(paths.runs.glob("*/slurm-jobs.json"), key=lambda p: p.stat().st_mtime) \
        if paths.runs.is_dir() else []
    if not records:
        raise UsageError(f"no submitted Slurm jobs under {paths.runs}", "submit with `nanochat slurm submit` first")
    return records[-1].parent.name


def read_record(path: Path) -> dict:
    """The job record `submit` wrote, or UsageError naming the file: submit writes it atomically, so a torn or
    reshaped one was cut or edited by something else (a full disk on a copy, an editor) and cannot be trusted."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else " ".join(str(e).split())[:120]
        raise UsageError(f"the Slurm job record {path} cannot be read ({reason})", _RECORD_FIX) from None
    jobs = record.get("jobs") if isinstance(record, dict) else None
    if not (isinstance(jobs, list) and isinstance(record.get("log_dir"), str)
            and all(isinstance(j, dict) and isinstance(j.get("script"), str) and isinstance(j.get("phases"), list)
                    and isinstance(j.get("id"), (str, type(None))) for j in jobs)):
        raise UsageError(f"the Slurm job record {path} is not one `nanochat slurm submit` wrote "
                         "(it needs log_dir and a list of jobs with id, script and phases)", _RECORD_FIX)
    return record


# The jobs live in Slurm, not in the file: losing the record loses only this command's view of them.
_RECORD_FIX = ("the queued jobs are unaffected (`squeue --me` lists them); move the file aside and submit again, "
               "or restore it from the job ids")


def status(paths: Paths, run: str | None) -> dict:
    """The run's jobs with their Slurm state (squeue while queued/running, scontrol after)."""
    run = run or latest_run(paths)
    rec_path = paths.slurm_jobs(run)
    if not rec_path.is_file():
        raise UsageError(f"run '{run}' has no submitted Slurm jobs ({rec_path} is missing)",
                         "pass the run name given by `nanochat slurm submit`, or omit --run for the latest")
    record = read_record(rec_path)
    ids = [j["id"] for j in record["jobs"] if j.get("id")]
    queued: dict[str, dict] = {}
    if ids:
        r = _run([_tool("squeue"), "-h", "-j", ",".join(ids), "-o", "%i|%T|%M|%l|%R"])
        for line in r.stdout.splitlines():
            parts = line.split("|", 4)
            if len(parts) == 5:
                queued[parts[0]] = {"state": parts[1], "elapsed": parts[2], "limit": parts[3], "reason": parts[4]}
    for job in record["jobs"]:
        jid = job.get("id")
        info = queued.get(jid) if jid else None
        if info is None and jid:
            info = _scontrol_job(jid)
        job.update(info or {"state": "gone", "reason": "no longer known to Slurm; see the log"})
        name = Path(job["script"]).stem
        job["log"] = str(Path(record["log_dir"]) / f"{name}-{jid}.out")
    return record


def _scontrol_job(job_id: str) -> dict | None:
    r = _run([_tool("scontrol"), "show", "job", "-o", job_id])
    if r.returncode != 0 or "JobId=" not in r.stdout:
        return None
    fields = dict(tok.split("=", 1) for tok in r.stdout.split() if "=" in tok)
    return {"state": fields.get("JobState", "?"), "elapsed": fields.get("RunTime", ""),
            "limit": fields.get("TimeLimit", ""), "reason": fields.get("Reason", ""),
            "exit_code": fields.get("ExitCode", ""), "restarts": fields.get("Restarts", "0")}
