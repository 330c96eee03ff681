"""Checkpoints that survive a crash: `<home>/checkpoints/<phase>/d{depth}/step_{step:06d}/`.

Each holds `model.safetensors` (weights, no pickle), `optim_rank{r}.pt` (one per rank, tensors and plain
containers only, read back with `torch.load(weights_only=True)`) and `meta.json` (resolved config, step,
tokenizer fingerprint, dataloader state, every rank's RNG states, metrics, sha256 of each other file).
Writes go to a hidden `.step_…tmp` directory, are fsynced, meta.json last, then the directory is renamed:
a kill at any instant leaves either no checkpoint or a complete one. Verifying hashes on load costs
~1 s per GB read; in exchange a torn or bit-rotted checkpoint is never loaded: the previous valid
one is used and stderr says so. It does not shard weights across ranks (rank 0 writes the full model).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nanochat_cli.errors import NanochatError, UsageError

MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
_STEP_DIR = re.compile(r"^step_(\d{6,})$")
FORMAT_VERSION = 1


def step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def optim_file(rank: int) -> str:
    return f"optim_rank{rank}.pt"


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------------
# RNG states as JSON (python, numpy, torch CPU, every CUDA device)

def _b64(t) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode("ascii")


def _unb64(s: str):
    import torch

    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def rng_state() -> dict[str, Any]:
    """This process's RNG states, JSON-serialisable."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    out = {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": _b64(torch.get_rng_state()),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_unb64(state["torch"]))
    if state.get("cuda") and torch.cuda.is_available():
        cuda = [_unb64(s) for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            _warn(f"checkpoint has CUDA RNG states for {len(cuda)} devices, this process sees "
                  f"{torch.cuda.device_count()}; CUDA RNG not restored")


# ---------------------------------------------------------------------------------------------------
# Writing

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # some filesystems do not allow opening a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_dir(directory: Path, step: int) -> Path:
    return directory / f".{step_dir_name(step)}.tmp"


def save_checkpoint(directory: Path, step: int, model_state: dict, optim_state: Any, meta: dict[str, Any], *,
                    rank: int = 0, world_size: int = 1, keep_last: int | None = None,
                    barrier: Callable[[], None] = lambda: None) -> Path:
    """Write checkpoint `step` under `directory` (the phase's d{depth} folder). Every rank calls this
    with its own optimizer state; rank 0 writes the weights and meta.json. `barrier` synchronises ranks
    (a no-op in one process). Returns the final checkpoint directory."""
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    final = directory / step_dir_name(step)
    tmp = _tmp_dir(directory, step)
    if rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a save that was killed
        tmp.mkdir()
    barrier()
    opath = tmp / optim_file(rank)
    torch.save(optim_state, opath)
    _fsync_file(opath)
    barrier()
    if rank == 0:
        weights = {k: v.detach().contiguous().cpu() for k, v in model_state.items()}
        save_file(weights, str(tmp / MODEL_FILE), metadata={"step": str(step)})
        _fsync_file(tmp / MODEL_FILE)
        files = [MODEL_FILE] + [optim_file(r) for r in range(world_size)]
        full_meta = dict(meta, step=step, world_size=world_size, format_version=FORMAT_VERSION,
                         files={name: _sha256(tmp / name) for name in files})
        with open(tmp / META_FILE, "w", encoding="utf-8") as f:  # last: its presence marks completeness
            json.dump(full_meta, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if final.exists():  # saving the same step again (e.g. after a resume): replace it whole
            old = directory / f".{step_dir_name(step)}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(directory)
        if keep_last:
            purge_old(directory, keep_last)
    barrier()
    return final


def list_steps(directory: Path) -> list[int]:
    """Steps of the checkpoint directories present (complete or not), ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    steps = [int(m.group(1)) for p in directory.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(steps)


def purge_old(directory: Path, keep_last: int) -> list[int]:
    """Delete all but the newest `keep_last` checkpoints (and stale temp dirs). Returns deleted steps."""
    directory = Path(directory)
    steps = list_steps(directory)
    doomed = steps[:-keep_last] if keep_last > 0 else []
    for s in doomed:
        shutil.rmtree(directory / step_dir_name(s), ignore_errors=True)
    return doomed


# ---------------------------------------------------------------------------------------------------
# Verifying and reading

def verify_checkpoint(path: Path, deep: bool = True) -> str | None:
    """None if the checkpoint at `path` is complete and its hashes match, else the reason it is not."""
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        return "meta.json missing (the save did not finish)"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        files = meta["files"]
    except (ValueError, KeyError, OSError) as e:
        return f"meta.json unreadable ({e.__class__.__name__})"
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} missing"
        if deep and _sha256(f) != digest:
            return f"{name} checksum mismatch"
    return None


def latest_valid_step(directory: Path, quiet: bool = False) -> int | None:
    """The newest step whose checkpoint verifies; skipped torn/corrupt ones are named on stderr."""
    skipped = []
    for step in reversed(list_steps(directory)):
        reason = verify_checkpoint(Path(directory) / step_dir_name(step))
        if reason is None:
            if skipped and not quiet:
                for s, r in skipped:
                    _warn(f"checkpoint {Path(directory) / step_dir_name(s)} is incomplete or corrupt ({r}); "
                          f"using the previous valid one, step {step}")
            return step
        skipped.append((step, reason))
    if skipped and not quiet:
        for s, r in skipped:
            _warn(f"checkpoint {Path(directory) / step_dir_name(s)} is incomplete or corrupt ({r}); "
                  "no valid checkpoint before it")
    return None


@dataclass
class Checkpoint:
    path: Path
    step: int
    meta: dict[str, Any]
    model_state: dict
    optim_state: Any  # this rank's, or None when not asked for


def load_checkpoint(directory: Path, step: int | None = None, *, rank: int = 0, device="cpu",
                    load_optimizer: bool = True, quiet: bool = False) -> Checkpoint:
    """Load checkpoint `step` (None = the newest valid one, falling back past corrupt ones) from the
    phase's d{depth} folder. A missing or corrupt explicitly requested step is a UsageError."""
    import torch
    from safetensors.torch import load_file

    directory = Path(directory)
    if step is None:
        step = latest_valid_step(directory, quiet=quiet)
        if step is None:
            raise UsageError(f"no complete checkpoint in {directory}",
                             "train that phase first (e.g. `nanochat train base`)")
    else:
        reason = verify_checkpoint(directory / step_dir_name(step))
        if reason is not None:
            have = [s for s in list_steps(directory) if s != step]
            raise UsageError(f"checkpoint step {step} in {directory} is not usable: {reason}",
                             f"pick another step ({', '.join(map(str, have)) or 'none present'})")
    path = directory / step_dir_name(step)
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    model_state = load_file(str(path / MODEL_FILE), device=str(device))
    optim_state = None
    if load_optimizer:
        opath = path / optim_file(rank)
        if not opath.is_file():
            raise NanochatError(f"{path} has optimizer state for {meta.get('world_size')} ranks, not rank {rank}",
                                "resume with the same number of processes (--nproc) as the run that saved it")
        optim_state = torch.load(opath, map_location=device, weights_only=True)
    return Checkpoint(path=path, step=step, meta=meta, model_state=model_state, optim_state=optim_state)
