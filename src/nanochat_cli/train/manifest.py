"""The run manifest: `<home>/runs/<run-id>/manifest.json` records each phase of a run (pending, running,
interrupted, done, failed) with its checkpoint, step, metrics and timings, next to `config.toml`, the
resolved config the run was started with. `resume` and `speedrun` read it to know what to do next.

Written atomically after every state change (a few hundred bytes, ~1 ms), rank 0 only, so a kill never
leaves a manifest that claims more than happened. It records; it does not decide policy (loop.py does).
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from nanochat_cli.config import config_to_toml_dict, dump_toml
from nanochat_cli.paths import Paths, atomic_write_json, atomic_write_text

PENDING, RUNNING, INTERRUPTED, DONE, FAILED = "pending", "running", "interrupted", "done", "failed"
UNFINISHED = (RUNNING, INTERRUPTED, FAILED, PENDING)
# Names people type when they do not care; the fork this project learns from skipped mid/SFT for
# WANDB_RUN=dummy. Here a name never changes what runs: a placeholder only gets a generated name.
# Names people type when they mean "whatever": training swaps them for a generated id, doctor warns about
# them and the Slurm renderer refuses them (a job's logs would part ways with its run).
PLACEHOLDER_NAMES = {"", "dummy", "test", "tests", "run", "tmp", "temp", "foo", "bar", "baz", "debug", "untitled",
                     "default", "xxx", "asdf", "example", "my-run", "myrun", "name", "changeme", "none", "null"}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def generate_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def named_run(name: str | None) -> str | None:
    """The run directory a user-given name refers to, or None for empty/placeholder names."""
    raw = (name or "").strip()
    if raw.lower() in PLACEHOLDER_NAMES:
        return None
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip(".-") or None


def resolve_run_id(name: str | None) -> str:
    """A safe directory name for the run: the user's name, or a generated one for empty/placeholder
    names (with a warning on stderr; never anything else)."""
    safe = named_run(name)
    if safe is None:
        generated = generate_run_id()
        raw = (name or "").strip()
        if raw and raw.lower() in PLACEHOLDER_NAMES:
            sys.stderr.write(f"warning: run name {raw!r} looks like a placeholder; using {generated!r} "
                             "(a run name never changes which phases run)\n")
        return generated
    return safe


class Manifest:
    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = Path(path)
        self.data = data

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def phases(self) -> dict[str, dict[str, Any]]:
        return self.data["phases"]

    @classmethod
    def create(cls, paths: Paths, run_id: str, cfg, phases: list[str]) -> "Manifest":
        """A new run directory with config.toml and a manifest whose phases are all pending. An existing
        run of the same id keeps its history: its manifest is loaded and the new phases appended."""
        run_dir = paths.run_dir(run_id)
        path = run_dir / "manifest.json"
        if path.is_file():
            m = cls.load(run_dir)
            for p in phases:
                m.phases.setdefault(p, {"status": PENDING})
            m.save()
            return m
        atomic_write_text(run_dir / "config.toml", dump_toml(config_to_toml_dict(cfg)))
        data = {"run_id": run_id, "created": _now(), "updated": _now(), "profile": cfg.profile,
                "depth": cfg.model.depth, "phases": {p: {"status": PENDING} for p in phases}}
        m = cls(path, data)
        m.save()
        return m

    @classmethod
    def load(cls, run_dir: Path) -> "Manifest":
        path = Path(run_dir) / "manifest.json"
        return cls(path, json.loads(path.read_text(encoding="utf-8")))

    def save(self) -> None:
        self.data["updated"] = _now()
        atomic_write_json(self.path, self.data)

    def update_phase(self, phase: str, **fields: Any) -> None:
        entry = self.phases.setdefault(phase, {"status": PENDING})
        status = fields.get("status")
        if status == RUNNING and "started" not in entry:
            entry["started"] = _now()
        if status in (DONE, FAILED, INTERRUPTED):
            entry["finished"] = _now()
        entry.update(fields)
        self.save()

    def next_unfinished(self) -> str | None:
        """The first phase, in run order, that is not done."""
        for phase, entry in self.phases.items():
            if entry.get("status") != DONE:
                return phase
        return None


def list_runs(paths: Paths) -> list[Manifest]:
    """Every run with a readable manifest, most recently updated last."""
    out = []
    if paths.runs.is_dir():
        for d in paths.runs.iterdir():
            try:
                out.append(Manifest.load(d))
            except (OSError, ValueError, KeyError):
                continue
    return sorted(out, key=lambda m: (m.data.get("updated", ""), m.path.stat().st_mtime_ns))


def latest_unfinished_run(paths: Paths) -> Manifest | None:
    """The most recently updated run that still has a phase to do."""
    for m in reversed(list_runs(paths)):
        if m.next_unfinished() is not None:
            return m
    return None
