"""What this machine has, and what an accelerator can do and costs: the one place for these facts.

- `usable_cpus()`: the cores this process may run on (its affinity mask, which Slurm and taskset narrow;
  macOS has no affinity call, so all cores).
- `PEAK_BF16_FLOPS`: dense bf16 tensor-core peak per GPU (vendor datasheets, no sparsity), matched against
  `torch.cuda.get_device_name()` in order, so the more specific names come first ("H100 NVL" before "H100",
  "A100" before "A10G"). MFU everywhere (training progress, `bench train`, the canary) divides by this.
- `GPU_DOLLARS_PER_HOUR`: on-demand price of one GPU-hour, for cost lines only (nanochat's speedrun: 8×H100
  at ~$24/h); the speedrun's dry run and the report card use the same prices.
- `profile_gpu(profile, device)`: which of those GPUs a profile is written for (a100x8 → "a100"), for estimates made on a
  machine that does not have it (a login node).
- `cuda_devices()` / `gpu_shortfall(cfg)`: how many CUDA GPUs this process can use, and whether that is fewer
  than the config trains on. Without a GPU driver on the machine (no /dev/nvidia*, no /dev/kfd) the answer is
  0 without importing torch, so a GPU profile on a laptop is refused in about a second, not after torch's
  2-8 s import; with a driver, torch's own count (it honours CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import glob
import os

PEAK_BF16_FLOPS: list[tuple[str, float]] = [
    ("H200", 989e12), ("H100 NVL", 835e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("GH200", 989e12),
    ("B200", 2250e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("A6000", 155e12),
    ("A10G", 70e12), ("L4", 121e12), ("4090", 165e12), ("3090", 71e12), ("V100", 125e12), ("T4", 65e12),
]
GPU_DOLLARS_PER_HOUR = {"a100": 1.8, "h100": 3.0}


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def peak_flops_of(name: str) -> float | None:
    """Peak bf16 FLOP/s of a GPU by its device name, or None when it is not in the table."""
    return next((value for key, value in PEAK_BF16_FLOPS if key in name), None)


def peak_flops(device) -> float | None:
    """Peak bf16 FLOP/s of one torch device, or None (CPU: there is no honest peak; an unlisted GPU)."""
    if getattr(device, "type", str(device)) != "cuda":
        return None
    import torch

    return peak_flops_of(torch.cuda.get_device_name(device))


def profile_gpu(profile: str, device: str | None = None) -> str | None:
    """"a100" / "h100" for the GPU profiles (and any config with train.device = cuda: priced as an A100),
    else None."""
    if profile.startswith("h100"):
        return "h100"
    if profile.startswith("a100") or device == "cuda":
        return "a100"
    return None


def gpu_peak(kind: str) -> float:
    """Peak bf16 FLOP/s of a profile GPU kind ("a100", "h100": the SXM parts of the table)."""
    return peak_flops_of(kind.upper())


def cuda_devices() -> tuple[int, str]:
    """(CUDA devices torch can use in this process, how that was found: a phrase for messages)."""
    if not glob.glob("/dev/nvidia[0-9]*") and not os.path.exists("/dev/kfd"):  # kfd: AMD ROCm, also torch.cuda
        return 0, "no GPU driver on this machine (no /dev/nvidia* device)"
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None and torch.version.hip is None else "its CUDA build"
        return 0, f"torch {torch.__version__} ({build}) sees no usable GPU"
    return torch.cuda.device_count(), f"torch.cuda.device_count() = {torch.cuda.device_count()}"


def gpu_shortfall(cfg) -> tuple[str, str] | None:
    """(what is missing, the fix) when `cfg` trains on CUDA (train.device = cuda) with dist.nproc processes per
    node and this process sees fewer GPUs; None when it fits (or trains elsewhere: cpu, mps, auto)."""
    if cfg.train.device != "cuda":
        return None
    need = cfg.dist.nproc
    n, how = cuda_devices()
    if n >= need:
        return None
    what = (f"the {cfg.profile} profile trains on {need} CUDA GPU{'s' if need > 1 else ''} per node "
            f"(train.device = cuda, dist.nproc = {need}) and this machine has {n}: {how}")
    if n == 0:
        return what, (f"on this machine use --profile cpu-small (or cpu-tiny); for the GPUs, render a Slurm job on a "
                      f"login node: `nanochat slurm render --profile {cfg.profile}` (then `sbatch` it)")
    return what, f"train on these with --nproc {n}, or ask for {need} GPUs per node (#SBATCH --gpus-per-node={need})"
