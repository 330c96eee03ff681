"""Experiment tracking: always a local `metrics.jsonl` in the run directory, plus wandb when asked
(`track.wandb`: online, offline or disabled). Rank 0 only; other ranks get a tracker that does nothing.

Offline wandb writes under `<home>/wandb` (syncable later with `wandb sync`) and needs no API key and
no network. Starting wandb's service costs ~2–5 s per run, so `disabled` (the cpu-tiny default) starts
nothing. A failing wandb is reported once and never stops training; metrics.jsonl is the record.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from nanochat_cli.paths import Paths, atomic_write_text, ensure_dir


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf
    return v


class Tracker:
    """`log(record)` appends one JSON line (the record must hold `step`) and forwards numbers to wandb."""

    def __init__(self, cfg, run_dir: Path, run_id: str, phase: str, enabled: bool = True,
                 resume_step: int | None = None):
        self.enabled = enabled
        self.phase = phase
        self.metrics_path = Path(run_dir) / "metrics.jsonl"
        self._file = None
        self._wandb_run = None
        if not enabled:
            return
        ensure_dir(Path(run_dir))
        if resume_step is not None:
            truncate_metrics(self.metrics_path, phase, resume_step)
        self._file = open(self.metrics_path, "a", encoding="utf-8")
        if cfg.track.wandb != "disabled":
            self._wandb_run = _start_wandb(cfg, run_id, phase)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        rec = {"phase": self.phase, **{k: _clean(v) for k, v in record.items()}}
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        if self._wandb_run is not None:
            nums = {f"{self.phase}/{k}": v for k, v in record.items()
                    if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
            try:
                self._wandb_run.log(nums, step=_wandb_step(self.phase, record["step"]))
            except Exception as e:  # tracking must never stop training
                sys.stderr.write(f"warning: wandb log failed ({e}); continuing with metrics.jsonl only\n")
                self._wandb_run = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._wandb_run is not None:
            try:
                self._wandb_run.finish()
            except Exception as e:
                sys.stderr.write(f"warning: wandb finish failed ({e})\n")
            self._wandb_run = None


_PHASE_OFFSET = {"base": 0, "mid": 10_000_000, "sft": 20_000_000, "rl": 30_000_000}


def _wandb_step(phase: str, step: int) -> int:
    # One wandb run per run id spans all phases; wandb steps must increase, so phases get disjoint ranges.
    return _PHASE_OFFSET.get(phase, 40_000_000) + int(step)


def _start_wandb(cfg, run_id: str, phase: str):
    try:
        import wandb
    except ImportError:
        sys.stderr.write("warning: wandb is not installed; tracking to metrics.jsonl only\n")
        return None
    wandb_dir = ensure_dir(Paths.of(cfg).wandb)
    mode = cfg.track.wandb
    # wandb reads a few switches only from the environment; set them for this process's wandb alone.
    os.environ["WANDB_DIR"] = str(wandb_dir)
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    from nanochat_cli.config import config_to_toml_dict

    try:
        return wandb.init(project=cfg.track.project, name=run_id, id=run_id, dir=str(wandb_dir), mode=mode,
                          resume="allow", config=config_to_toml_dict(cfg), job_type=phase,
                          settings=wandb.Settings(silent=True, disable_git=True, x_disable_stats=True,
                                                  console="off"))
    except Exception as e:
        sys.stderr.write(f"warning: wandb failed to start in {mode} mode ({e}); tracking to metrics.jsonl only\n")
        return None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl; a torn last line (killed mid-write) is skipped."""
    out = []
    if not Path(path).is_file():
        return out
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def truncate_metrics(path: Path, phase: str, step: int) -> None:
    """Drop this phase's records after `step` (they were logged after the checkpoint a resume starts from
    and will be logged again), so the file reads as one uninterrupted run."""
    path = Path(path)
    if not path.is_file():
        return
    keep = [r for r in read_metrics(path) if r.get("phase") != phase or r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))
