"""Every on-disk location, derived from `Config.home`. Nothing else in the package builds paths.

Layout (docs/reference/on-disk-layout.md): base_data/ tokenizers/<fingerprint>/ eval_bundle/ datasets/ tiktoken/
wandb/ and runs/<run>/ — each run owns its config, manifest, metrics, logs and checkpoints/<phase>/step_NNNNNN/,
so one run never has to move or delete another's files, and a tokenizer version is never overwritten. (The
first layout — checkpoints/<phase>/d<depth>/ shared by all runs, one tokenizer/ — is migrated on first use by
legacy_layout.py and tokenizer/legacy.py.) Getters never create directories (no side effects); writers call
`ensure_dir` or `atomic_write_*`, which make the parent first.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

PHASES = ("base", "mid", "sft", "rl")


class Paths:
    """The locations under one home. Build it with `Paths.of(cfg)` (or `Paths(dir)` for a home that is not the
    config's, e.g. a scratch directory); the home is made absolute (`~` expanded, symlinks kept), so paths
    written into job scripts and manifests mean the same thing from any working directory."""

    def __init__(self, home: Path | str):
        self.home = Path(os.path.abspath(Path(home).expanduser()))

    @classmethod
    def of(cls, cfg) -> "Paths":
        return cls(cfg.home)

    @property
    def base_data(self) -> Path:
        return self.home / "base_data"

    @property
    def tokenizers(self) -> Path:
        """Trained tokenizers, one directory per version, named by its fingerprint (tokenizer/store.py)."""
        return self.home / "tokenizers"

    def tokenizer_dir(self, fingerprint: str) -> Path:
        return self.tokenizers / fingerprint

    @property
    def default_tokenizer(self) -> Path:
        """A one-line file naming the fingerprint new runs use."""
        return self.tokenizers / "default"

    @property
    def tokenizer_lock(self) -> Path:
        """Held by `tokenizer train` and the migration while they add a version (locks.py)."""
        return self.tokenizers / ".lock"

    @property
    def migrated_tokenizers(self) -> Path:
        """Where the migration keeps each pre-versions <home>/tokenizer it moved (never deleted)."""
        return self.tokenizers / ".migrated"

    @property
    def damaged_tokenizers(self) -> Path:
        """Where a damaged version directory is set aside when training writes the same version again."""
        return self.tokenizers / ".damaged"

    @property
    def legacy_tokenizer(self) -> Path:
        """The single tokenizer directory of releases before versioning; migrated on first use."""
        return self.home / "tokenizer"

    @property
    def legacy_checkpoints(self) -> Path:
        """`checkpoints/<phase>/d<depth>/` of the first layout, shared by every run (migrated on first use)."""
        return self.home / "checkpoints"

    @property
    def eval_bundle(self) -> Path:
        return self.home / "eval_bundle"

    @property
    def datasets(self) -> Path:
        """HF cache root (HF_HOME / HF_DATASETS_CACHE point here)."""
        return self.home / "datasets"

    @property
    def tiktoken(self) -> Path:
        return self.home / "tiktoken"

    @property
    def wandb(self) -> Path:
        return self.home / "wandb"

    @property
    def runs(self) -> Path:
        return self.home / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def run_checkpoints(self, run_id: str, phase: str) -> Path:
        """`runs/<run>/checkpoints/<phase>/`: the run's step_NNNNNN/ checkpoints of that phase."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        return self.run_dir(run_id) / "checkpoints" / phase

    def run_lock(self, run_id: str) -> Path:
        """Held (flock) by the one process writing the run; holds `pid host what` while held."""
        return self.run_dir(run_id) / ".lock"

    @property
    def home_lock(self) -> Path:
        """Held briefly while a home of the first layout is migrated."""
        return self.home / ".migrate.lock"

    @property
    def data_lock(self) -> Path:
        """Held while `data fetch` writes shards or datasets (a second fetch waits)."""
        return self.home / ".data.lock"

    def run_logs(self, run_id: str) -> Path:
        """Slurm job logs of a run (`%x-%j.out/.err`); render creates it because sbatch will not."""
        return self.run_dir(run_id) / "logs"

    def slurm_jobs(self, run_id: str) -> Path:
        """JSON record of the jobs `slurm submit` queued for a run (ids, scripts, dependencies)."""
        return self.run_dir(run_id) / "slurm-jobs.json"

    def slurm_state(self, run_id: str) -> Path:
        """Per-job phase progress written by the batch script, so a requeued job skips finished phases."""
        return self.run_dir(run_id) / "slurm-state"

    @property
    def word_list(self) -> Path:
        return self.home / "words_alpha.txt"


def check_writable_dir(path: Path, what: str, fix: str) -> None:
    """UsageError (exit 2) unless `path` is a directory we can write in, or could be created as one; creates
    nothing. Asked before work whose result ends in a write, so a read-only or mistyped target is one line in
    milliseconds, not a raw OSError after the work. It finds the nearest directory that exists on the way,
    refuses a file in the way, and writes and deletes one empty probe file there — a probe, not `os.access`:
    the answer must hold for root too (root passes every permission bit, but not a read-only mount) and on
    network file systems. `what` names the target in the message (e.g. "--out"), `fix` says what to do."""
    from nanochat_cli.errors import UsageError

    path = Path(path)
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        problem = "is a file, not a directory" if existing == path else f"cannot be created: {existing} is a file"
        raise UsageError(f"{what} {path} {problem}", fix)
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        where = "" if existing == path else f" (in {existing})"
        raise UsageError(f"cannot write to {what} {path}: {e.strerror or e}{where}", fix) from None


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` and prove a file can be written there (a bad --home is bad input: exit 2, one line)."""
    from nanochat_cli.errors import UsageError

    try:
        ensure_dir(path)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"cannot write to {path}: {e.strerror or e}",
                         "pass --home DIR (or set NANOCHAT_HOME) to a writable directory") from None
    return path


def fsync_file(path: Path) -> None:
    """Flush a written file to the disk (before a rename makes it visible under its final name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename into it survives a power cut); a no-op where the file system
    does not allow opening or syncing a directory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str | None:
    """sha256 of a file's bytes, read in 1 MB chunks (~1 s per GB); None when it cannot be read."""
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def process_umask() -> int:
    """This process's umask, read without changing it (Linux: /proc/self/status; elsewhere it is set and put
    back at once, which another thread creating a file in between could notice)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path | str, directory: bool = False) -> None:
    """Give a file (0666) or directory (0777) made by `tempfile` (always 0600/0700) the mode `open`/`mkdir`
    would have given it: minus the umask. On a shared cluster home a teammate's umask 022 means "readable by
    the group", and a checkpoint that only its writer can read breaks that."""
    os.chmod(path, (0o777 if directory else 0o666) & ~process_umask())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`: a crash leaves
    either the old file or the new one, never a torn one. The file gets the mode a plain `open` would
    (0666 minus the umask), not mkstemp's 0600."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~process_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
