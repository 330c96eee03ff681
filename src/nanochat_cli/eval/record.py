"""Where a standalone `nanochat eval ...` result lands: the run of the evaluated checkpoint.

The same shapes the speedrun's eval stage (eval/suite.py) writes, so `nanochat report` reads both: an entry
in manifest.json `evals` under `<source>_bpb`, `<source>_core` or `<source>_chat` (the latest of a kind
wins; `base_bpb`, `base_core`, `sft_chat` are what the report card shows), and a `phase: "eval"` line in
metrics.jsonl through the run's Tracker. The run is the one that owns the checkpoint. Rank 0 only; a few
KB per result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nanochat_cli.paths import Paths


def jsonable(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def check_recordable(cfg, run_id: str) -> None:
    """Before any compute: the run directory the result will go to must take a write (a read-only home used
    to cost the whole evaluation, ~30 s of bpb or minutes of CORE, and then fail with a raw OSError)."""
    from nanochat_cli.paths import check_writable_dir

    check_writable_dir(Paths.of(cfg).run_dir(run_id), "the run directory", "an evaluation is recorded in the "
                       "checkpoint's run; run it with --home (or NANOCHAT_HOME) on a writable copy of the home, "
                       "or make this one writable")


def record_result(cfg, run_id: str, kind: str, result: dict, metrics: dict[str, Any]) -> Path:
    """Store `result` as evals["<source>_<kind>"] (kind: bpb, core, chat) in run `run_id` (the evaluated
    checkpoint's) and log `metrics`; returns the run dir."""
    from nanochat_cli.track import Tracker
    from nanochat_cli.runs import Manifest

    paths = Paths.of(cfg)
    manifest = Manifest.create(paths, run_id, cfg, [])
    source = result.get("source", "base")
    entry = {k: v for k, v in result.items() if k not in ("rank", "world_size")}
    # Re-read under the manifest lock: the run may be training (and writing its manifest) right now.
    manifest.update(lambda data: data.setdefault("evals", {}).__setitem__(f"{source}_{kind}", jsonable(entry)))
    tracker = Tracker(cfg, manifest.run_dir, run_id, "eval")
    try:
        tracker.log({"step": result.get("step", 0), "model": source, **metrics})
    finally:
        tracker.close()
    return manifest.run_dir
