"""Where eval results land: the run of the evaluated checkpoint (`<home>/runs/<run_id>/`).

One line per result in metrics.jsonl (`"phase": "eval"`, `kind`, `source`, `step`, the headline numbers and
each task's accuracy), and a summary in manifest.json under `evals["<kind>/<source>"]` (the latest result
of that kind wins), which `nanochat report` reads. The run id comes from the checkpoint's meta.json; a
checkpoint without one records into run `eval`. Rank 0 only; a few hundred bytes per result. It does not
forward to wandb (evals run outside a training tracker).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nanochat_cli.paths import Paths


def _plain(v: Any) -> Any:
    return str(v) if isinstance(v, Path) else v


def record_result(cfg, meta: dict, kind: str, result: dict) -> Path:
    """Store `result` (from run_core / run_bpb / run_chat_eval) in its run; returns the run directory."""
    from nanochat_cli.train.manifest import Manifest

    run_id = meta.get("run_id") or "eval"
    manifest = Manifest.create(Paths.of(cfg), run_id, cfg, [])
    summary = {k: _plain(v) for k, v in result.items() if k != "tasks" and not isinstance(v, (dict, list))}
    summary["tasks"] = {name: {k: t[k] for k in ("accuracy", "centered") if k in t}
                        for name, t in (result.get("tasks") or {}).items()}
    if isinstance(result.get("samples"), list):  # a few generations for the report card, not all
        summary["samples"] = result["samples"][:3]
    summary["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest.data.setdefault("evals", {})[f"{kind}/{result.get('source')}"] = summary
    manifest.save()
    line = {"phase": "eval", "kind": kind, "source": result.get("source"), "step": result.get("step")}
    line.update({k: v for k, v in summary.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in line})
    for name, t in summary["tasks"].items():
        if "accuracy" in t:
            line[f"{name}/accuracy"] = t["accuracy"]
    with open(manifest.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    return manifest.run_dir
