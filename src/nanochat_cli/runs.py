"""Runs: their names, their manifest, and the one writer each may have.

A run is `<home>/runs/<run>/`: `config.toml` (the resolved config it started with), `manifest.json` (each
phase — pending, running, interrupted, done, failed — with its checkpoint, step, metrics and timings, plus
recorded evals), metrics.jsonl, logs, report.md and `checkpoints/<phase>/step_NNNNNN/`. A run owns these
files: nothing here moves or deletes one run's files for another.

Names are strict (letters, digits and `._-`, at most 64 characters) because a name is a directory, a Slurm
job label and a wandb id; an invalid name is one line and exit 2, never silently rewritten. Names people
type when they mean "whatever" (`tmp`, `test`, …) get a generated id with a warning when a run is created,
and the Slurm renderer refuses them (a job's logs would part ways with its run).

The manifest is written atomically after every state change (a few hundred bytes, ~1 ms) and every update
re-reads it under a short lock (`.manifest.lock`), so an eval recording its result while the run trains
loses neither write. The run lock (`.lock`, see locks.py) is held by the one process that trains the run.
"""

from __future__ import annotations

import difflib
import json
import re
import secrets
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.paths import PHASES, Paths, atomic_write_json, atomic_write_text

PENDING, RUNNING, INTERRUPTED, DONE, FAILED = "pending", "running", "interrupted", "done", "failed"
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Names people type when they mean "whatever": a new run gets a generated id instead (with a warning), doctor
# warns about them, the Slurm renderer refuses them. (The fork this project learns from skipped mid/SFT for
# WANDB_RUN=dummy; here a name never changes what runs.)
PLACEHOLDER_NAMES = {"dummy", "test", "tests", "run", "tmp", "temp", "foo", "bar", "baz", "debug", "untitled",
                     "default", "xxx", "asdf", "example", "my-run", "myrun", "name", "changeme", "none", "null"}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def generate_run_id(prefix: str = "") -> str:
    """`[prefix-]YYYYMMDD-HHMMSS-xxxx` (UTC, 4 random hex digits so two runs started in one second differ)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)
    return f"{prefix}-{stamp}" if prefix else stamp


def check_run_name(name: str, what: str = "run name") -> str:
    """`name` if it is a valid run name, else UsageError saying what is allowed."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or name.endswith(".") or ".." in name:
        shown = name if len(name) <= 40 else name[:37] + "…"
        raise UsageError(f"{what} {shown!r} is not a valid run name ({len(name)} characters)",
                         "use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit "
                         "(e.g. --run d20-a100x8-v1)")
    return name


def is_placeholder(name: str | None) -> bool:
    return (name or "").strip().lower() in PLACEHOLDER_NAMES


def new_run_name(requested: str | None, prefix: str = "") -> str:
    """The name of a run about to be created: the user's (validated), or a generated one when none was given
    or it is a placeholder (said on stderr)."""
    raw = (requested or "").strip()
    if not raw or is_placeholder(raw):
        generated = generate_run_id(prefix)
        if raw:
            sys.stderr.write(f"warning: run name {raw!r} looks like a placeholder; using {generated!r} "
                             "(a run name never changes which phases run)\n")
        return generated
    return check_run_name(raw)


# ---------------------------------------------------------------------------------------------------
# The manifest

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
        """Phase → record, in pipeline order (the file's keys are sorted: "rl" would come before "sft")."""
        phases = self.data["phases"]
        if list(phases) != sorted(phases, key=PHASES.index):
            self.data["phases"] = phases = {p: phases[p] for p in sorted(phases, key=PHASES.index)}
        return phases

    @classmethod
    def create(cls, paths: Paths, run_id: str, cfg, phases: list[str]) -> "Manifest":
        """A new run directory with config.toml and a manifest whose phases are all pending. An existing run
        of the same id keeps its history: its manifest is loaded and the new phases appended."""
        from nanochat_cli.config import config_to_toml_dict
        from nanochat_cli.config_sources import dump_toml

        run_dir = paths.run_dir(check_run_name(run_id))
        path = run_dir / "manifest.json"
        with _manifest_lock(run_dir):
            if path.is_file():
                m = cls.load(run_dir)
                for p in phases:
                    m.phases.setdefault(p, {"status": PENDING})
                m._write()
                return m
            atomic_write_text(run_dir / "config.toml", dump_toml(config_to_toml_dict(cfg)))
            data = {"run_id": run_id, "created": _now(), "updated": _now(), "profile": cfg.profile,
                    "depth": cfg.model.depth, "phases": {p: {"status": PENDING} for p in phases}}
            m = cls(path, data)
            m._write()
            return m

    @classmethod
    def load(cls, run_dir: Path) -> "Manifest":
        """The run's manifest; PreflightError naming the file when it is unreadable or not a manifest."""
        path = Path(run_dir) / "manifest.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, ValueError, RecursionError) as e:
            raise _corrupt(path, f"unreadable ({e.__class__.__name__})") from None
        reason = _check_manifest(data)
        if reason:
            raise _corrupt(path, reason)
        return cls(path, data)

    def _write(self) -> None:
        self.data["updated"] = _now()
        atomic_write_json(self.path, self.data)

    def update(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply `change` to the manifest as it is on disk now (another process may have recorded an eval
        meanwhile), under the manifest lock, and write it back."""
        with _manifest_lock(self.run_dir):
            try:
                self.data = Manifest.load(self.run_dir).data
            except (FileNotFoundError, PreflightError):
                pass  # gone or damaged on disk: ours is the best record left, and it is written whole
            change(self.data)
            self._write()

    def update_phase(self, phase: str, **fields: Any) -> None:
        def change(data):
            entry = data["phases"].setdefault(phase, {"status": PENDING})
            status = fields.get("status")
            if status == RUNNING and "started" not in entry:
                entry["started"] = _now()
            if status in (DONE, FAILED, INTERRUPTED):
                entry["finished"] = _now()
            entry.update(fields)

        self.update(change)

    def reset_phases(self, phases: list[str]) -> None:
        """Mark `phases` pending (they will run from scratch) — only for phases with no checkpoint."""
        def change(data):
            for p in phases:
                data["phases"][p] = {"status": PENDING}

        self.update(change)

    def next_unfinished(self) -> str | None:
        """The first phase, in run order, that is not done."""
        for phase, entry in self.phases.items():
            if entry.get("status") != DONE:
                return phase
        return None


def _check_manifest(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"it is a JSON {type(data).__name__}, not an object"
    if not isinstance(data.get("run_id"), str):
        return "it has no run_id"
    phases = data.get("phases")
    if not isinstance(phases, dict) or not all(p in PHASES and isinstance(e, dict) for p, e in phases.items()):
        return "its 'phases' is not a map of phase → record"
    if "evals" in data and not isinstance(data["evals"], dict):
        return "its 'evals' is not an object"
    return None


def _corrupt(path: Path, reason: str) -> PreflightError:
    return PreflightError(f"the run manifest {path} is {reason}" if reason.startswith("unreadable")
                          else f"the run manifest {path} is damaged: {reason}",
                          f"restore it from a backup, or move it away (the run's checkpoints stay usable: "
                          f"`nanochat runs` lists them)")


@contextmanager
def _manifest_lock(run_dir: Path) -> Iterator[None]:
    from nanochat_cli.locks import hold

    with hold(Path(run_dir) / ".manifest.lock", wait=True, what="manifest update"):
        yield


# ---------------------------------------------------------------------------------------------------
# Listing and finding runs

def run_names(paths: Paths) -> list[str]:
    """Names of the run directories under the home (valid names only), sorted."""
    try:
        return sorted(p.name for p in paths.runs.iterdir() if p.is_dir() and RUN_NAME.fullmatch(p.name))
    except OSError:
        return []


def list_runs(paths: Paths, warn: bool = True) -> list[Manifest]:
    """Every run with a readable manifest, most recently updated last. A damaged manifest is named on stderr
    (`warn`) and its run left out of the list (its checkpoints are still found by checkpoint lookups)."""
    out = []
    for name in run_names(paths):
        try:
            out.append(Manifest.load(paths.run_dir(name)))
        except FileNotFoundError:
            continue
        except PreflightError as e:
            if warn:
                sys.stderr.write(f"warning: {e.message}; skipping that run\n")
    return sorted(out, key=lambda m: (m.data.get("updated", ""), m.path.stat().st_mtime_ns))


def latest_unfinished_run(paths: Paths) -> Manifest | None:
    """The most recently updated run that still has a phase to do."""
    for m in reversed(list_runs(paths)):
        if m.next_unfinished() is not None:
            return m
    return None


def load_named_run(paths: Paths, name: str) -> Manifest:
    """The manifest of run `name`; UsageError listing the nearest names when there is no such run."""
    check_run_name(name)
    try:
        return Manifest.load(paths.run_dir(name))
    except FileNotFoundError:
        raise no_such_run(paths, name) from None


def no_such_run(paths: Paths, name: str) -> UsageError:
    names = run_names(paths)
    near = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    have = (f"nearest: {', '.join(near)}" if near else
            f"runs: {', '.join(names[-5:])}" if names else "there are no runs yet")
    return UsageError(f"there is no run named {name!r} in {paths.runs} ({have})",
                      "see them with `nanochat runs`")


@contextmanager
def writing_run(paths: Paths, run_id: str, what: str) -> Iterator[Path]:
    """Hold run `run_id`'s writer lock for the block; PreflightError (exit 3) naming the holder when another
    process writes it. The run directory is created. A worker started by a launching nanochat process
    (launch.py: `speedrun --nproc N` holds the run while its stages run on N processes) writes under that
    process's lock: the holder is then its launcher, on this host, and cannot let go while the worker runs."""
    import socket

    from nanochat_cli.dist import launcher_pid
    from nanochat_cli.locks import LockHeld, describe_holder, hold

    check_run_name(run_id)
    try:
        with hold(paths.run_lock(run_id), wait=False, what=f"run {run_id} ({what})"):
            yield paths.run_lock(run_id)
        return
    except LockHeld as e:
        if e.path != paths.run_lock(run_id):
            raise
        held = e
    if held.pid is not None and held.pid == launcher_pid() and held.host == socket.gethostname():
        yield paths.run_lock(run_id)
        return
    raise PreflightError(f"run {run_id!r} is being written by {describe_holder(held.pid, held.host)}",
                         "wait for it to finish (or stop it), or use another --run name")


def current_writer(paths: Paths, run_id: str) -> str | None:
    """Who writes `run_id` now ("pid N on HOST"), or None (probes the lock without waiting)."""
    from nanochat_cli.locks import LockHeld, describe_holder, hold

    if not paths.run_dir(run_id).is_dir():
        return None
    try:
        with hold(paths.run_lock(run_id), wait=False, what=f"run {run_id}"):
            return None
    except LockHeld as e:
        return describe_holder(e.pid, e.host)
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------------
# Sizes and removal (`nanochat runs`)

def dir_size(path: Path) -> int:
    total = 0
    for p in Path(path).rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total


@dataclass
class RunSummary:
    name: str
    profile: str | None
    created: str | None
    updated: str | None
    phases: dict[str, dict[str, Any]]  # phase → {"status", "step", "num_iterations", "checkpoints"}
    bytes: int
    problem: str | None = None  # why the manifest could not be read

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def summarize_runs(paths: Paths) -> list[RunSummary]:
    """One summary per run directory (damaged manifests included, with the reason), oldest first."""
    from nanochat_cli import checkpoint as ck

    out = []
    for name in run_names(paths):
        run_dir = paths.run_dir(name)
        data, problem = {}, None
        try:
            data = Manifest.load(run_dir).data
        except FileNotFoundError:
            problem = "no manifest.json"
        except PreflightError as e:
            problem = e.message
        phases: dict[str, dict[str, Any]] = {}
        for phase in PHASES:
            entry = dict((data.get("phases") or {}).get(phase) or {})
            steps = ck.list_steps(paths.run_checkpoints(name, phase))
            if not entry and not steps:
                continue
            phases[phase] = {"status": entry.get("status", "unknown" if steps else PENDING),
                             "step": entry.get("step", steps[-1] if steps else None),
                             "num_iterations": entry.get("num_iterations"), "checkpoints": steps}
        out.append(RunSummary(name, data.get("profile"), data.get("created"), data.get("updated"), phases,
                              dir_size(run_dir), problem))
    return sorted(out, key=lambda r: (r.created or "", r.name))


def remove_run(paths: Paths, name: str) -> int:
    """Delete run `name` (all its checkpoints, logs and records) while holding its writer lock, so a run that
    is training is never removed under it. Returns the bytes freed."""
    if not paths.run_dir(check_run_name(name)).is_dir():
        raise no_such_run(paths, name)
    run_dir = paths.run_dir(name)
    size = dir_size(run_dir)
    with writing_run(paths, name, "runs rm"):
        # Rename first (atomic), then delete: an interrupted rm leaves a hidden dir, never half a run.
        doomed = paths.runs / f".{name}.removing-{secrets.token_hex(2)}"
        run_dir.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return size
