"""The canary (`nanochat doctor --canary`): one minute of real training on every local device before a
12-hour job, to find out now what would otherwise fail at hour 3.

It trains the training loop's own step (`train.loop.train_step`: the profile's dtype, compile setting,
optimizers and collectives — nccl on GPUs, gloo on CPUs) for `CANARY_STEPS` optimizer steps on the node's real
data path (the base shards through `TokenLoader`, the default tokenizer, or the byte-level one when none is
trained yet), with the profile's batch and sequence length and at most `CANARY_MAX_DEPTH` layers, and checks:
the loss falls; every rank holds the same weights after the all-reduced updates; a checkpoint written to the
home's filesystem at step `SAVE_AT` and loaded back (weights, optimizer state, data position, RNG) repeats the
next two steps' losses; and measures tokens/s and MFU against the device's peak (hardware.PEAK_BF16_FLOPS; None
on CPU, which has no honest peak). Cost on 8×A100 at d12 (~0.6 s a step, plus a cold compile): about a minute;
on cpu-tiny with 2 gloo processes: seconds. It writes nothing that stays: the checkpoint goes to
<home>/.canary/<host>-<pid>/ and is deleted. It does not replace `nanochat bench` (throughput of one config)
or the first steps of the real run (the full depth).
"""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nanochat_cli import dist

CANARY_STEPS = 20
SAVE_AT = 10  # the checkpoint is written after this many steps; steps SAVE_AT+1 and +2 are repeated from it
CANARY_MAX_DEPTH = 12  # nanochat's d12: the real width per layer and batch, a fraction of d20's time and memory
TIMED_FROM = 3  # the first steps include compilation and allocator warm-up; tok/s counts the steps after them
RESUME_RTOL = 1e-5  # equal on CPU bit for bit; on GPUs the backward's atomics may differ in the last bits


def canary_config(cfg, depth: int | None = None):
    """The profile's config with the canary's model: at most CANARY_MAX_DEPTH layers (or `depth`); batch,
    sequence length, dtype and compile setting as the profile has them."""
    c = cfg.model_copy(deep=True)
    c.model.depth = depth or min(cfg.model.depth, CANARY_MAX_DEPTH)
    return c


def canary_preflight(cfg) -> None:
    """What the canary checks before it starts any worker: the profile's GPUs and the base shards it reads."""
    from nanochat_cli.data.shards import list_shards
    from nanochat_cli.errors import PreflightError
    from nanochat_cli.hardware import gpu_shortfall

    short = gpu_shortfall(cfg)
    if short is not None:
        raise PreflightError(f"gpus: {short[0]}", short[1])
    list_shards(cfg)


def _tokenizer(cfg):
    from nanochat_cli.errors import PreflightError
    from nanochat_cli.tokenizer import load_tokenizer

    try:
        return load_tokenizer(cfg)
    except PreflightError:  # before the pipeline's tokenizer stage: the data path is the same with bytes
        byte_cfg = cfg.model_copy(deep=True)
        byte_cfg.tokenizer.kind = "byte"
        return load_tokenizer(byte_cfg)


def _weights_fingerprint(model) -> list[float]:
    """Sum and sum of squares of every parameter in float64: equal on every rank when the updates agree."""
    import torch

    with torch.no_grad():
        total = sum(p.detach().double().sum() for p in model.parameters())
        squares = sum(p.detach().double().pow(2).sum() for p in model.parameters())
    return [float(total), float(squares)]


def _scratch_dir(paths, info) -> Path:
    """<home>/.canary/<host>-<pid of rank 0>/, the same on every rank (nodes share the home)."""
    name = dist.broadcast_object(f"{socket.gethostname()}-{__import__('os').getpid()}")
    return paths.home / ".canary" / name


def run_canary(cfg, depth: int | None = None, steps: int = CANARY_STEPS) -> dict[str, Any]:
    """Train `steps` steps on every rank of this torchrun world (or this one process) and report; every rank
    returns the same result (losses are all-reduced, checks gathered)."""
    import torch

    from nanochat_cli import checkpoint as ck
    from nanochat_cli.data.shards import list_shards
    from nanochat_cli.data.loader import TokenLoader
    from nanochat_cli.hardware import peak_flops, usable_cpus
    from nanochat_cli.model.compiled import prepare_for_training
    from nanochat_cli.model.gpt import GPT, GPTConfig
    from nanochat_cli.model.optim import build_optimizers
    from nanochat_cli.model.precision import resolve_device, resolve_dtype
    from nanochat_cli.paths import Paths
    from nanochat_cli.train.loop import train_step

    t_start = time.time()
    cfg = canary_config(cfg, depth)
    info = dist.dist_info()
    device = resolve_device(cfg)
    device = torch.device(device) if not isinstance(device, torch.device) else device
    info = dist.init(cfg.dist.backend, device.type)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    torch.set_num_threads(cfg.train.threads or max(1, usable_cpus() // info.local_world_size))
    dtype, dtype_reason = resolve_dtype(cfg, device)
    tokenizer = _tokenizer(cfg)
    train_files, val_file = list_shards(cfg)
    train_files = train_files or [val_file]  # a home with one shard: the data path is the same
    B, T = cfg.train.device_batch_size, cfg.model.seq_len

    torch.manual_seed(cfg.train.seed)
    with torch.device(device):
        raw = GPT(GPTConfig.from_config(cfg, tokenizer.vocab_size))
    raw.init_weights()
    model = prepare_for_training(raw, cfg, device, dtype)
    optimizers = build_optimizers(raw, cfg, world_size=info.world_size)
    loader = TokenLoader(train_files, tokenizer, B, T, rank=info.rank, world_size=info.world_size)
    state = SimpleNamespace(grad_accum=1, data=SimpleNamespace(train=loader), device=device, model=model,
                            optimizers=optimizers, num_iterations=100 * steps, cfg=cfg, raw_model=raw, info=info)
    paths = Paths.of(cfg)
    scratch = _scratch_dir(paths, info)
    losses, saved = [], None
    try:
        t_timed = None
        for step in range(steps):
            if step == TIMED_FROM:
                _sync(device)
                t_timed = time.time()
            if step == SAVE_AT:
                t_save = time.time()
                saved = ck.save_checkpoint(scratch, step, raw.state_dict(), [o.state_dict() for o in optimizers],
                                           {"loader": dist.gather_objects(loader.state_dict()),
                                            "rng": dist.gather_objects(ck.rng_state())},
                                           rank=info.rank, world_size=info.world_size, barrier=dist.barrier)
                t_timed += time.time() - t_save  # the save is not training time
            losses.append(train_step(state, step).loss)
        _sync(device)
        timed_steps = steps - TIMED_FROM
        seconds = time.time() - t_timed
        fingerprints = dist.gather_objects(_weights_fingerprint(raw))
        replay = _replay(state, saved, info, device)
    finally:
        loader_close = getattr(loader, "close", None)
        if callable(loader_close):
            loader_close()
        dist.barrier()
        if info.is_rank0:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
            try:
                scratch.parent.rmdir()  # only when no other canary is using it
            except OSError:
                pass

    tokens_per_step = B * T * info.world_size
    tok_per_s = tokens_per_step * timed_steps / seconds if seconds > 0 else None
    peak = peak_flops(device)
    flops_per_token = raw.estimate_flops()
    mfu = flops_per_token * tok_per_s / (peak * info.world_size) if peak and tok_per_s else None
    expected = losses[SAVE_AT:SAVE_AT + len(replay)]
    resume_equal = all(math.isclose(a, b, rel_tol=RESUME_RTOL, abs_tol=1e-7) for a, b in zip(expected, replay))
    ranks_agree = all(f == fingerprints[0] for f in fingerprints)
    loss_falls = losses[-1] < losses[0]
    return {
        "ok": bool(loss_falls and ranks_agree and resume_equal and all(map(math.isfinite, losses))),
        "loss_first": losses[0], "loss_last": losses[-1], "ranks_agree": ranks_agree, "resume_equal": resume_equal,
        "tok_per_s": tok_per_s, "mfu": mfu,
        "losses": losses, "resumed_losses": replay, "steps": steps, "world_size": info.world_size,
        "backend": _backend(), "device": device.type, "device_name": _device_name(device),
        "dtype": str(dtype).removeprefix("torch."), "dtype_reason": dtype_reason,
        "compiled": bool(getattr(model, "training_setup", {}).get("compiled")), "depth": cfg.model.depth,
        "params": sum(p.numel() for p in raw.parameters()), "batch": [B, T], "tokens_per_step": tokens_per_step,
        "flops_per_token": flops_per_token, "peak_flops": peak, "tokenizer": getattr(tokenizer, "kind", "bpe"),
        "checkpoint_dir": str(scratch), "seconds": time.time() - t_start,
    }


def _replay(state, saved: Path | None, info, device) -> list[float]:
    """Load the step-SAVE_AT checkpoint back into the same model, optimizers and loader, and train two steps."""
    from nanochat_cli import checkpoint as ck
    from nanochat_cli.train.loop import train_step

    if saved is None:
        return []
    loaded = ck.load_checkpoint(saved.parent, SAVE_AT, rank=info.rank, device=device, quiet=not info.is_rank0)
    state.raw_model.load_state_dict(loaded.model_state, strict=True)
    for opt, saved_state in zip(state.optimizers, loaded.optim_state):
        opt.load_state_dict(saved_state)
    state.data.train.load_state_dict(loaded.meta["loader"][info.rank])
    ck.set_rng_state(loaded.meta["rng"][info.rank])
    return [train_step(state, SAVE_AT + i).loss for i in range(2)]


def _sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _backend() -> str | None:
    import torch.distributed as tdist

    return tdist.get_backend() if tdist.is_available() and tdist.is_initialized() else None


def _device_name(device) -> str:
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()
