"""The learner's workspace on disk: `gpt.py` (their model), `PROGRESS.md`, and `backups/`.

`init`, `reset` and `solution --apply` are the only writers of `gpt.py`, and each first copies what is
there to `backups/<UTC timestamp>/`, so no keystroke of the learner is ever lost; writes are atomic.
A workspace is just a directory (default `./nanochat-learn`), not under NANOCHAT_HOME: it is the
learner's code and belongs next to their other work. Costs one ~30 KB copy per reset.
This module does not run the learner's code (check.py does).
"""

from __future__ import annotations

import datetime as _dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from nanochat_cli.errors import UsageError
from nanochat_cli.learn import progress, skeleton
from nanochat_cli.learn.components import COMPONENTS, get
from nanochat_cli.paths import atomic_write_text, ensure_dir

DEFAULT_DIR = Path("nanochat-learn")


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def gpt(self) -> Path:
        return self.root / "gpt.py"

    @property
    def progress(self) -> Path:
        return self.root / "PROGRESS.md"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    def read(self) -> str:
        try:
            return self.gpt.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"{self.gpt} is not UTF-8 text ({e.reason})", "save it as UTF-8") from None

    def write(self, text: str) -> None:
        atomic_write_text(self.gpt, text)


def resolve(path: Path | str | None) -> Workspace:
    if path is not None and not str(path).strip():
        raise UsageError("the workspace path is empty", f"pass a directory, or leave it out for ./{DEFAULT_DIR}")
    return Workspace(Path(path) if path is not None else DEFAULT_DIR)


def require(path: Path | None) -> Workspace:
    """The workspace, checked to exist (bad input is one line and exit 2)."""
    ws = resolve(path)
    if not ws.root.exists():
        raise UsageError(f"no learn workspace at {ws.root}", f"create one with `nanochat learn init {ws.root}`")
    if not ws.root.is_dir():
        raise UsageError(f"{ws.root} is not a directory", "pass the workspace directory made by `nanochat learn init`")
    if not ws.gpt.is_file():
        raise UsageError(f"{ws.root} has no gpt.py, so it is not a learn workspace",
                         f"`nanochat learn init {ws.root}` (add --force if the directory holds other work)")
    return ws


def _stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def backup(ws: Workspace) -> Path | None:
    """Copy gpt.py and PROGRESS.md to backups/<timestamp>/; None when there is nothing to save."""
    files = [p for p in (ws.gpt, ws.progress) if p.is_file()]
    if not files:
        return None
    dest = ensure_dir(ws.backups / _stamp())
    for p in files:
        shutil.copy2(p, dest / p.name)
    return dest


def init(path: Path | None, force: bool = False) -> dict:
    """Write the skeleton and a fresh progress file; existing work needs `force` and is backed up."""
    ws = resolve(path)
    if ws.root.exists() and not ws.root.is_dir():
        raise UsageError(f"{ws.root} exists and is not a directory", "choose another workspace path")
    from nanochat_cli.paths import check_writable_dir

    check_writable_dir(ws.root, "the learn workspace", "choose a directory you can write")
    existing = [p for p in (ws.gpt, ws.progress) if p.exists()]
    if existing and not force:
        raise UsageError(f"{ws.root} already holds your work ({', '.join(p.name for p in existing)})",
                         f"continue with `nanochat learn step {ws.root}`, or start over with "
                         f"`nanochat learn init {ws.root} --force` (your files are backed up first)")
    ref = skeleton.reference_source()
    text = skeleton.make_skeleton(ref, COMPONENTS, workspace_file=str(ws.gpt))
    saved = backup(ws) if existing else None
    ensure_dir(ws.root)
    ws.write(text)
    prog = progress.Progress(text=progress.initial_text(COMPONENTS))
    prog.save(ws.progress, COMPONENTS)
    return {"workspace": str(ws.root), "gpt": str(ws.gpt), "progress": str(ws.progress),
            "backup": str(saved) if saved else None, "components": [c.name for c in COMPONENTS]}


def reset(path: Path | None, name: str) -> dict:
    """Put one component back to its TODO (backup first)."""
    ws = require(path)
    comp = get(name)
    text = ws.read()
    new = skeleton.splice_placeholder(text, skeleton.reference_source(), comp)
    saved = backup(ws)
    ws.write(new)
    prog = progress.Progress.load(ws.progress)
    prog.record({comp.name: ("todo", "reset")})
    prog.passed.pop(comp.name, None)
    prog.save(ws.progress, COMPONENTS)
    return {"component": comp.name, "backup": str(saved) if saved else None, "gpt": str(ws.gpt)}


def solution(name: str) -> str:
    """The reference code of one component."""
    return skeleton.solution_text(skeleton.reference_source(), get(name))


def apply_solution(path: Path | None, name: str) -> dict:
    """Splice the reference code of one component into the learner's file (backup first)."""
    ws = require(path)
    comp = get(name)
    new = skeleton.splice_reference(ws.read(), skeleton.reference_source(), comp)
    saved = backup(ws)
    ws.write(new)
    prog = progress.Progress.load(ws.progress)
    prog.log(f"{_dt.datetime.now():%Y-%m-%d %H:%M} — took the reference solution of `{comp.name}`.")
    prog.save(ws.progress, COMPONENTS)
    return {"component": comp.name, "backup": str(saved) if saved else None, "gpt": str(ws.gpt)}


def hint(path: Path | None, name: str | None, level: int | None = None) -> dict:
    """The next hint level of a component (default: the first component that is not done)."""
    ws = require(path)
    prog = progress.Progress.load(ws.progress)
    if name is None:
        from nanochat_cli.learn import source
        text = ws.read()
        comp = next((c for c in COMPONENTS if prog.status.get(c.name) == "failing"), None) \
            or next((c for c in COMPONENTS if source.is_todo(text, c)), COMPONENTS[-1])
    else:
        comp = get(name)
    if level is None:
        level = prog.next_hint_level(comp.name, len(comp.hints))
    else:
        if not 1 <= level <= len(comp.hints):
            raise UsageError(f"{comp.name} has hint levels 1..{len(comp.hints)}, not {level}")
        prog.hints[comp.name] = max(level, prog.hints.get(comp.name, 0))
    prog.save(ws.progress, COMPONENTS)
    more = level < len(comp.hints)
    return {"component": comp.name, "title": comp.title, "level": level, "levels": len(comp.hints),
            "hint": comp.hints[level - 1],
            "next": (f"`nanochat learn hint {comp.name}` again for level {level + 1}" if more
                     else f"last level; `nanochat learn solution {comp.name}` shows the reference")}
