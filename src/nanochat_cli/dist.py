"""Process groups: who am I (RANK/LOCAL_RANK/WORLD_SIZE from torchrun), init/cleanup, barriers, the torchrun
arguments for `--nproc N` (launch.py starts the workers), and what a launching nanochat process tells them.

This module and config.py are the only places that read the environment. nccl on CUDA, gloo on CPU
(`dist.backend`); the training loop uses only all_reduce/broadcast/all_gather_object, which both have.
Launching keeps a single code path for 1 and N processes; the launching process stays (launch.py).
It does not set up multi-node rendezvous itself: Slurm jobs call torchrun with c10d (see slurm/).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank and world size as torchrun set them (a plain process is rank 0 of 1)."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", 1))
    return DistInfo(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), world,
                    int(env.get("LOCAL_WORLD_SIZE", world)))


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or "WORLD_SIZE" in os.environ


def is_rank0() -> bool:
    return dist_info().is_rank0


def init(backend: str, device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun with more than one process; else do nothing."""
    import torch
    import torch.distributed as tdist

    info = dist_info()
    if not info.is_distributed or tdist.is_initialized():
        return info
    if backend == "auto":
        backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    tdist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def barrier() -> None:
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()


def any_rank(flag: bool) -> bool:
    """True when `flag` is set on any rank (used so every rank stops at the same step)."""
    import torch
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()):
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    if tdist.get_backend() == "nccl":
        t = t.cuda()
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_object(obj):
    """Rank 0's `obj` on every rank (one process: `obj`, without importing torch)."""
    if not dist_info().is_distributed:
        return obj
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()):
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()):
        return [obj]
    out = [None] * tdist.get_world_size()
    tdist.all_gather_object(out, obj)
    return out


def cleanup() -> None:
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def strip_options(argv: list[str], options: dict[str, int]) -> list[str]:
    """`argv` without the given options: {"--nproc": 1} drops `--nproc N` and `--nproc=N`, {"--json": 0} the flag."""
    out, skip = [], 0
    for a in argv:
        if skip:
            skip -= 1
            continue
        if a in options:
            skip = options[a]
            continue
        if "=" in a and a.split("=", 1)[0] in options:
            continue
        out.append(a)
    return out


def strip_nproc(argv: list[str]) -> list[str]:
    """`argv` without `--nproc N` / `--nproc=N`."""
    return strip_options(argv, {"--nproc": 1})


def torchrun_args(argv: list[str], nproc: int) -> list[str]:
    """torchrun's own arguments for `nanochat argv` on `nproc` local processes (`--nproc` removed from argv)."""
    # `--` ends torchrun's options: its argparse matches abbreviations anywhere on the line, so without it our
    # `--run NAME` is refused as "ambiguous option: --run could match --run-path".
    return ["--standalone", f"--nproc_per_node={nproc}", "-m", "--", "nanochat_cli", *strip_nproc(argv)]


def torchrun_command(argv: list[str], nproc: int) -> list[str]:
    """The same as a command line (`python -m torch.distributed.run ...`), for messages and plans: launch.py
    runs torchrun's agent in-process instead of executing this."""
    return [sys.executable, "-m", "torch.distributed.run", *torchrun_args(argv, nproc)]


# Set by launch.py for the workers it starts: where each leaves its exit record, and which process holds the
# run locks they write under.
LAUNCH_DIR_ENV = "NANOCHAT_LAUNCH_DIR"
LAUNCHER_PID_ENV = "NANOCHAT_LAUNCHER_PID"


def launch_dir() -> str | None:
    """The directory of the nanochat process that launched this worker (None when torchrun was run directly)."""
    return os.environ.get(LAUNCH_DIR_ENV) or None


def launcher_pid() -> int | None:
    """The pid of the nanochat process that launched this worker, which may hold locks on its behalf."""
    value = os.environ.get(LAUNCHER_PID_ENV, "")
    return int(value) if value.isdigit() else None


def debug_enabled() -> bool:
    """NANOCHAT_DEBUG is set: show tracebacks and the launcher's own log lines."""
    return bool(os.environ.get("NANOCHAT_DEBUG"))
