"""Checkpoints that survive a crash: `<home>/runs/<run>/checkpoints/<phase>/step_{step:06d}/`.

Each holds `model.safetensors` (weights, no pickle), `optim_rank{r}.pt` (one per rank, tensors and plain
containers only, read back with `torch.load(weights_only=True)`) and `meta.json` (resolved config, step,
tokenizer fingerprint, dataloader state, every rank's RNG states, metrics, sha256 of each other file).
Writes go to a hidden `.step_…tmp` directory, are fsynced, meta.json last, then the directory is renamed:
a kill at any instant leaves either no checkpoint or a complete one. meta.json carries its own sha256
(`meta_sha256`, over its canonical JSON) and is checked against a schema, so an edited or hostile meta.json
is refused like a torn file. Verifying hashes on load costs ~1 s per GB read; in exchange a torn, bit-rotted
or hand-edited checkpoint is never loaded: the previous valid one is used and stderr says so, and a file
that fails to load (a safetensors header claiming 2^62 bytes, an optimizer file that is not plain tensors)
is treated the same way. It does not shard weights across ranks (rank 0 writes the full model).
"""

from __future__ import annotations

import base64
import functools
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
from nanochat_cli.paths import fsync_dir, fsync_file, sha256_file

MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
_STEP_DIR = re.compile(r"^step_(\d{6,})$")
# 2: meta.json carries meta_sha256. Version 1 checkpoints (no self-hash) still load, schema-checked.
FORMAT_VERSION = 2


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

def _tmp_dir(directory: Path, step: int) -> Path:
    return directory / f".{step_dir_name(step)}.tmp"


def meta_digest(meta: dict[str, Any]) -> str:
    """sha256 of meta.json's canonical JSON without its own `meta_sha256` key."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def save_checkpoint(directory: Path, step: int, model_state: dict, optim_state: Any, meta: dict[str, Any], *,
                    rank: int = 0, world_size: int = 1, keep_last: int | None = None,
                    barrier: Callable[[], None] = lambda: None) -> Path:
    """Write checkpoint `step` under `directory` (the run's checkpoints/<phase>/ folder). Every rank calls this
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
    fsync_file(opath)
    barrier()
    if rank == 0:
        weights = {k: v.detach().contiguous().cpu() for k, v in model_state.items()}
        save_file(weights, str(tmp / MODEL_FILE), metadata={"step": str(step)})
        fsync_file(tmp / MODEL_FILE)
        files = [MODEL_FILE] + [optim_file(r) for r in range(world_size)]
        full_meta = dict(meta, step=step, world_size=world_size, format_version=FORMAT_VERSION,
                         files={name: sha256_file(tmp / name) for name in files})
        full_meta["meta_sha256"] = meta_digest(full_meta)
        with open(tmp / META_FILE, "w", encoding="utf-8") as f:  # last: its presence marks completeness
            json.dump(full_meta, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(tmp)
        if final.exists():  # the same step again (resumed from before a damaged one): replace it whole
            old = directory / f".{step_dir_name(step)}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        fsync_dir(directory)
        _VERIFIED[str(final)] = _meta_mtime(final)  # we just hashed every file: known good
        if keep_last:
            purge_old(directory, keep_last)
    barrier()
    return final


def list_steps(directory: Path) -> list[int]:
    """Steps of the checkpoint directories present (complete or not), ascending."""
    directory = Path(directory)
    try:
        entries = list(directory.iterdir())
    except OSError:  # missing, or not a directory
        return []
    return sorted(int(m.group(1)) for p in entries if (m := _STEP_DIR.match(p.name)) and p.is_dir())


def purge_old(directory: Path, keep_last: int) -> list[int]:
    """Keep the newest `keep_last` *valid* checkpoints and everything newer; delete the older ones and the
    temp/old directories of killed saves (rank 0, after a save, so none of them is in use). A damaged
    checkpoint never counts towards `keep_last`: otherwise a torn newest one would cost a good older one.
    Returns the deleted steps."""
    directory = Path(directory)
    for leftover in directory.glob(".step_*"):  # `.step_N.tmp` / `.step_N.old` of a save that was killed
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
    if keep_last <= 0:
        return []
    steps = list_steps(directory)
    valid = 0
    doomed = []
    for s in reversed(steps):
        if valid >= keep_last:
            doomed.append(s)
        elif is_valid_cached(directory / step_dir_name(s)):
            valid += 1
    for s in doomed:
        shutil.rmtree(directory / step_dir_name(s), ignore_errors=True)
    return sorted(doomed)


# ---------------------------------------------------------------------------------------------------
# Verifying and reading

# Paths known to verify, with the mtime of their meta.json then: a checkpoint this process wrote or
# loaded is not hashed again when purge_old counts valid ones (seconds per save at d20 sizes).
_VERIFIED: dict[str, int] = {}


def _meta_mtime(path: Path) -> int:
    try:
        return (Path(path) / META_FILE).stat().st_mtime_ns
    except OSError:
        return -1


def is_valid_cached(path: Path) -> bool:
    key = str(path)
    if _VERIFIED.get(key) == _meta_mtime(path) != -1:
        return True
    ok = verify_checkpoint(path) is None
    if ok:
        _VERIFIED[key] = _meta_mtime(path)
    return ok


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _check_rng(state: Any) -> str | None:
    """Why an RNG state from meta.json cannot be restored (None if it can), without touching the real RNGs."""
    import numpy as np

    try:
        version, internal, gauss = state["python"]
        random.Random().setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.RandomState().set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        if len(base64.b64decode(state["torch"], validate=True)) != _torch_rng_bytes():
            return "torch RNG state has the wrong size"
        for c in state.get("cuda") or []:
            base64.b64decode(c, validate=True)
    except Exception as e:  # noqa: BLE001 - any malformed state is a reason, not a crash
        return f"RNG state is malformed ({e.__class__.__name__})"
    return None


@functools.lru_cache(maxsize=1)
def _torch_rng_bytes() -> int:
    import torch

    return torch.get_rng_state().numel()


def check_meta(meta: Any) -> str | None:
    """Why meta.json is not a checkpoint's metadata (None when its shape is right and its self-hash, when it
    has one, matches). What the loop and the loaders read from it is checked here, once."""
    if not isinstance(meta, dict):
        return f"meta.json is a {type(meta).__name__}, not an object"
    if "meta_sha256" in meta and meta["meta_sha256"] != meta_digest(meta):
        return "meta.json was modified after it was written (meta_sha256 mismatch)"
    if meta.get("format_version", 1) >= 2 and "meta_sha256" not in meta:
        return "meta.json lacks its meta_sha256"
    def bad(key, kind):
        return not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool)
    if bad("step", int) or meta["step"] < 0:
        return "meta.json has no valid 'step'"
    if bad("world_size", int) or meta["world_size"] < 1:
        return "meta.json has no valid 'world_size'"
    files = meta.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files or not all(
            isinstance(k, str) and "/" not in k and k not in ("", ".", "..") and isinstance(v, str)
            and _HEX64.match(v) for k, v in files.items()):
        return "meta.json 'files' is not a list of file hashes"
    if "model_config" in meta and not isinstance(meta["model_config"], dict):
        return "meta.json 'model_config' is not an object"
    if "tokenizer" in meta and not isinstance(meta["tokenizer"], dict):
        return "meta.json 'tokenizer' is not an object"
    for key in ("phase", "run_id"):
        if key in meta and not isinstance(meta[key], str):
            return f"meta.json '{key}' is not a string"
    if "num_iterations" in meta and (bad("num_iterations", int) or meta["num_iterations"] < 0):
        return "meta.json 'num_iterations' is not a count"
    for key in ("loader", "rng"):  # what an exact resume restores, one entry per rank
        if key in meta and (not isinstance(meta[key], list) or len(meta[key]) != meta["world_size"]
                            or not all(isinstance(x, dict) for x in meta[key])):
            return f"meta.json '{key}' does not hold one state per rank"
    for state in meta.get("rng") or []:
        reason = _check_rng(state)
        if reason:
            return reason
    return None


def read_meta(path: Path) -> dict[str, Any]:
    """meta.json of the checkpoint at `path`, schema-checked; ValueError with the reason otherwise."""
    try:
        meta = json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ValueError(f"meta.json unreadable ({e.__class__.__name__})") from None
    reason = check_meta(meta)
    if reason:
        raise ValueError(reason)
    return meta


def verify_checkpoint(path: Path, deep: bool = True) -> str | None:
    """None if the checkpoint at `path` is complete, its meta.json well-formed and its hashes match, else
    the reason it is not."""
    path = Path(path)
    if not (path / META_FILE).is_file():
        return "meta.json missing (the save did not finish)"
    try:
        meta = read_meta(path)
    except ValueError as e:
        return str(e)
    for name, digest in meta["files"].items():
        f = path / name
        if not f.is_file():
            return f"{name} missing"
        if deep and sha256_file(f) != digest:
            return f"{name} checksum mismatch"
    return None


def is_finished(meta: dict[str, Any]) -> bool:
    """True when the checkpoint is the phase's last step (its schedule ran to the end)."""
    n = meta.get("num_iterations")
    return isinstance(n, int) and meta.get("step", -1) >= n


def latest_valid_step(directory: Path, quiet: bool = False) -> int | None:
    """The newest step whose checkpoint verifies; skipped torn/corrupt ones are named on stderr."""
    skipped = []
    for step in reversed(list_steps(directory)):
        reason = verify_checkpoint(Path(directory) / step_dir_name(step))
        if reason is None:
            _warn_skipped(directory, skipped, step, quiet)
            return step
        skipped.append((step, reason))
    _warn_skipped(directory, skipped, None, quiet)
    return None


def _warn_skipped(directory: Path, skipped: list, using: int | None, quiet: bool) -> None:
    if quiet:
        return
    for s, r in skipped:
        tail = f"using the previous valid one, step {using}" if using is not None else "no valid checkpoint before it"
        _warn(f"checkpoint {Path(directory) / step_dir_name(s)} is incomplete or corrupt ({r}); {tail}")


@dataclass
class Checkpoint:
    path: Path
    step: int
    meta: dict[str, Any]
    model_state: dict
    optim_state: Any  # this rank's, or None when not asked for


class DamagedCheckpoint(Exception):
    """A checkpoint that verified but whose files do not load (or whose meta the caller rejects)."""


def _read_files(path: Path, meta: dict, rank: int, device, load_optimizer: bool,
                accept: Callable[[dict], str | None] | None) -> Checkpoint:
    import torch
    from safetensors.torch import load_file

    if accept is not None:
        reason = accept(meta)
        if reason:
            raise DamagedCheckpoint(reason)
    try:
        model_state = load_file(str(path / MODEL_FILE), device=str(device))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types (and OverflowError on a forged header)
        raise DamagedCheckpoint(f"{MODEL_FILE} does not load ({e.__class__.__name__})") from None
    optim_state = None
    if load_optimizer:
        opath = path / optim_file(rank)
        if not opath.is_file():
            raise NanochatError(f"{path} has optimizer state for {meta.get('world_size')} ranks, not rank {rank}",
                                "resume with the same number of processes (--nproc) as the run that saved it")
        try:
            optim_state = torch.load(opath, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 - weights_only refuses pickled objects: a damaged or forged file
            raise DamagedCheckpoint(f"{opath.name} does not load as plain tensors ({e.__class__.__name__})") from None
    return Checkpoint(path=path, step=meta["step"], meta=meta, model_state=model_state, optim_state=optim_state)


def load_checkpoint(directory: Path, step: int | None = None, *, rank: int = 0, device="cpu",
                    load_optimizer: bool = True, quiet: bool = False,
                    accept: Callable[[dict], str | None] | None = None) -> Checkpoint:
    """Load checkpoint `step` from a run's checkpoints/<phase>/ folder. `step` None = the newest one that
    verifies *and loads*, falling back past damaged ones (named on stderr). `accept(meta)` may reject a meta
    with a reason (e.g. a model config the caller cannot build); a rejected checkpoint counts as damaged. An
    explicitly requested step that is missing or damaged is a UsageError."""
    directory = Path(directory)
    if step is not None:
        path = directory / step_dir_name(step)
        reason = verify_checkpoint(path)
        if reason is None:
            try:
                ck = _read_files(path, read_meta(path), rank, device, load_optimizer, accept)
                _VERIFIED[str(path)] = _meta_mtime(path)
                return ck
            except DamagedCheckpoint as e:
                reason = str(e)
        have = [s for s in list_steps(directory) if s != step]
        raise UsageError(f"checkpoint step {step} in {directory} is not usable: {reason}",
                         f"pick another step ({', '.join(map(str, have)) or 'none present'})")
    skipped = []
    for s in reversed(list_steps(directory)):
        path = directory / step_dir_name(s)
        reason = verify_checkpoint(path)
        if reason is None:
            try:
                ck = _read_files(path, read_meta(path), rank, device, load_optimizer, accept)
            except DamagedCheckpoint as e:
                reason = str(e)
            else:
                _warn_skipped(directory, skipped, s, quiet)
                _VERIFIED[str(path)] = _meta_mtime(path)
                return ck
        skipped.append((s, reason))
    _warn_skipped(directory, skipped, None, quiet)
    raise UsageError(f"no complete checkpoint in {directory}", "train that phase first (e.g. `nanochat train base`)")
