"""Homes made by the first release kept checkpoints in `checkpoints/<phase>/d<depth>/step_N/`, shared by every
run (a new run moved the old directory aside to `d<depth>.before-<run>`). On first use such a home is migrated:
each step directory is renamed into the run its meta.json names, `runs/<run>/checkpoints/<phase>/step_N/`
(a rename on one file system: atomic, no copy), the run's manifest is pointed at the new paths, and emptied
legacy directories are removed. A checkpoint whose run cannot be told (meta.json damaged) goes to run
`legacy-<phase>-d<depth>`; one whose target already exists stays where it is and is named on stderr. Nothing
is deleted. It runs under a home-wide lock, so two commands starting at once migrate once; a migrated home
costs one `stat` per command afterwards.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from nanochat_cli.paths import PHASES, Paths

_DEPTH_DIR = re.compile(r"^d(\d+)(?:\.before-.+)?$")


def migrate_if_needed(paths: Paths) -> list[str]:
    """Migrate the legacy checkpoints directory when there is one; returns one line per moved checkpoint."""
    if not paths.legacy_checkpoints.is_dir():
        return []
    from nanochat_cli.locks import hold

    with hold(paths.home_lock, wait=True, what="migrating the first layout"):
        if not paths.legacy_checkpoints.is_dir():  # another process did it while we waited
            return []
        return _migrate(paths)


def _run_of(step_dir: Path, phase: str, depth: str) -> str:
    from nanochat_cli.runs import RUN_NAME

    try:
        run = json.loads((step_dir / "meta.json").read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        run = None
    return run if isinstance(run, str) and RUN_NAME.fullmatch(run) else f"legacy-{phase}-d{depth}"


def _migrate(paths: Paths) -> list[str]:
    from nanochat_cli import checkpoint as ck

    moved: dict[str, str] = {}  # old path → new path
    lines = []
    for phase in PHASES:
        for depth_dir in sorted((paths.legacy_checkpoints / phase).glob("d*")):
            m = _DEPTH_DIR.match(depth_dir.name)
            if not m or not depth_dir.is_dir():
                continue
            for step in ck.list_steps(depth_dir):
                src = depth_dir / ck.step_dir_name(step)
                run = _run_of(src, phase, m.group(1))
                dst = paths.run_checkpoints(run, phase) / src.name
                if dst.exists():
                    sys.stderr.write(f"warning: not migrating {src}: {dst} already exists (both are kept)\n")
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.rename(src, dst)
                moved[str(src)] = str(dst)
                lines.append(f"{src} → {dst}")
            _remove_if_empty(depth_dir)
        _remove_if_empty(paths.legacy_checkpoints / phase)
    _remove_if_empty(paths.legacy_checkpoints)
    _repoint_manifests(paths, moved)
    if lines:
        sys.stderr.write(f"note: moved {len(lines)} checkpoint(s) of the first layout into their runs "
                         f"({paths.runs}/<run>/checkpoints/<phase>/); `nanochat runs` lists them\n")
    return lines


def _remove_if_empty(d: Path) -> None:
    # Only directories holding nothing but leftovers of killed saves (hidden .step_N.tmp) are kept as they are.
    try:
        d.rmdir()
    except OSError:
        pass


def _repoint_manifests(paths: Paths, moved: dict[str, str]) -> None:
    """Manifests store checkpoint paths as text: point them at the run's own new places; runs that had
    checkpoints but no manifest get a minimal one, so `resume` and `runs` see them."""
    from nanochat_cli import checkpoint as ck
    from nanochat_cli.errors import PreflightError
    from nanochat_cli.paths import atomic_write_json
    from nanochat_cli.runs import DONE, INTERRUPTED, Manifest

    runs = {Path(new).parents[2].name for new in moved.values()}
    for run in sorted(runs):
        run_dir = paths.run_dir(run)
        try:
            manifest = Manifest.load(run_dir)
        except FileNotFoundError:
            manifest = None
        except PreflightError:
            continue  # damaged: left for the user, whom `runs` tells
        if manifest is None:
            phases = {}
            for phase in PHASES:
                steps = ck.list_steps(paths.run_checkpoints(run, phase))
                if steps:
                    path = paths.run_checkpoints(run, phase) / ck.step_dir_name(steps[-1])
                    try:
                        done = ck.is_finished(ck.read_meta(path))
                    except ValueError:
                        done = False
                    phases[phase] = {"status": DONE if done else INTERRUPTED, "step": steps[-1],
                                     "checkpoint": str(path)}
            atomic_write_json(run_dir / "manifest.json", {"run_id": run, "phases": phases,
                                                          "migrated_from": str(paths.legacy_checkpoints)})
            continue

        def change(data, run=run):
            # The first layout's manifests name shared directories (a later run may have reused the path):
            # point each phase at this run's own checkpoint of the recorded step, else its newest one.
            for phase, entry in data["phases"].items():
                directory = paths.run_checkpoints(run, phase)
                steps = ck.list_steps(directory)
                if not steps:
                    continue
                step = entry.get("step") if entry.get("step") in steps else steps[-1]
                entry["checkpoint"] = str(directory / ck.step_dir_name(step))
                entry["checkpoint_dir"] = str(directory)

        manifest.update(change)
