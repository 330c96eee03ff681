"""Device, compute dtype and torch.compile availability, each chosen once with the reason recorded.

bf16 is chosen on CUDA, and on a CPU only when it has AVX512-BF16 or AMX: there oneDNN's bf16 matmuls
run ~2.4× the fp32 rate, while on an AVX2-only CPU they run 7–50× *slower* (measured 0.8 vs 38 GFLOP/s
on a 2-core AVX2 EPYC). The CPU is judged by its /proc/cpuinfo flags and oneDNN's own bf16 check, not a
timing (no benchmark at start-up). torch.compile needs a C++ compiler on CPU; without one we run eager
and say so once. This module does not cast or compile models (model/compiled.py does).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
from pathlib import Path

import torch

from nanochat_cli.errors import UsageError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_device(cfg) -> torch.device:
    """`train.device`: auto = cuda when present, else cpu. Asking for an absent device is a usage error."""
    want = cfg.train.device
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if want == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA GPU", "use --device cpu or auto")
    if want == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps asked for, but MPS is not available", "use --device cpu or auto")
    return torch.device(want)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags of the first core (empty where /proc/cpuinfo does not exist)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_fast_bf16(flags: set[str] | None = None) -> tuple[bool, str]:
    """(fast, why): fast bf16 matmuls need AVX512-BF16 or AMX-BF16 (x86) and oneDNN support for them."""
    flags = cpu_flags() if flags is None else flags
    have = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if not have:
        return False, "CPU lacks AVX512-BF16/AMX (bf16 matmuls would be several times slower than fp32)"
    if not torch.backends.mkldnn.is_available():
        return False, f"CPU has {', '.join(have)} but this torch build lacks oneDNN"
    return True, f"CPU has {', '.join(have)} (bf16 matmuls ~2.4x fp32)"


def resolve_dtype(cfg, device: torch.device, flags: set[str] | None = None) -> tuple[torch.dtype, str]:
    """(compute dtype, reason). `train.dtype` other than auto wins; auto = bf16 on CUDA and on CPUs with
    fast bf16, fp32 elsewhere (MPS: fp32, its bf16 support varies by OS version)."""
    want = cfg.train.dtype
    if want != "auto":
        return _DTYPES[want], f"set by train.dtype={want}"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16, "CUDA: bf16 tensor cores"
    if device.type == "cpu":
        fast, why = cpu_has_fast_bf16(flags)
        return (torch.bfloat16 if fast else torch.float32), why
    return torch.float32, f"{device.type}: fp32 is the safe default"


@functools.lru_cache(maxsize=1)
def compiler_available() -> tuple[bool, str]:
    """(usable, why) for torch.compile on CPU: inductor needs a C++ compiler (CXX or c++/g++/clang++)."""
    if sys.platform == "win32":
        return False, "torch.compile is not supported on Windows CPU here"
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return True, f"C++ compiler {shutil.which(name)}"
    return False, "no C++ compiler found (install g++ or clang++ to enable torch.compile)"


def resolve_compile(cfg, device: torch.device) -> tuple[bool, str]:
    """(compile?, reason) from `train.compile`: auto compiles on CUDA and on CPU when a compiler exists."""
    want = cfg.train.compile
    if want == "off":
        return False, "set by train.compile=off"
    if torch.device(device).type == "mps":
        return False, "torch.compile is not used on MPS"
    if torch.device(device).type == "cuda":
        return True, "CUDA" if want == "auto" else "set by train.compile=on"
    ok, why = compiler_available()
    if want == "on" and not ok:
        raise UsageError(f"--compile on asked for, but {why}", "install a C++ compiler or use --compile auto")
    return ok, why


_log = logging.getLogger("nanochat_cli.model")


def compile_or_eager(fn, enabled: bool, what: str, **compile_kwargs):
    """`fn` compiled with torch.compile when `enabled`, falling back to eager (with one warning) if
    compiling fails at the first call, e.g. a broken compiler; `enabled=False` returns `fn` itself."""
    if not enabled:
        return fn
    compiled = torch.compile(fn, **compile_kwargs)
    state = {"fn": compiled}

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return state["fn"](*args, **kwargs)
        except Exception as e:  # inductor raises many types (CppCompileError, BackendCompilerFailed, ...)
            if state["fn"] is fn:
                raise
            _log.warning("torch.compile of %s failed (%s: %s); running it eagerly", what, type(e).__name__,
                         str(e).splitlines()[0] if str(e) else "")
            state["fn"] = fn
            return fn(*args, **kwargs)

    return run
