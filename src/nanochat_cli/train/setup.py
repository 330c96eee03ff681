"""Everything a training phase needs before its first step, in the order that fails cheapest first.

`setup_phase` returns a `PhaseState`: which run it writes (picked and locked by rank 0 before torch is even
imported, so a second writer of the run is told in about a second), the checkpoint it resumes or starts from,
the tokenizer that checkpoint was trained with, the phase's data (its preflight runs here, before any model
exists), the model and optimizers, and — when resuming — the optimizer state, data position and RNG restored
exactly. The loop (loop.py) then only steps, evaluates, samples, saves and logs. Rank 0 holds the run's
writer lock and writes the manifest; every rank learns the run choice, or the same error.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanochat_cli import checkpoint as ck
from nanochat_cli import dist
from nanochat_cli.errors import NanochatError, PreflightError, UsageError
from nanochat_cli.hardware import peak_flops, usable_cpus
from nanochat_cli.paths import Paths
from nanochat_cli.runs import RUNNING, Manifest, writing_run
from nanochat_cli.signals import StopFlag
from nanochat_cli.train.phase_data import INIT_FROM, PhaseData
from nanochat_cli.train.phases import build_phase_data, load_phase_tokenizer, phase_view
from nanochat_cli.train.schedule import num_iterations as base_num_iterations


@dataclass
class PhaseState:
    """What the loop works with. `cfg` is the phase's view (phases.phase_view); `run_cfg` the config as given,
    which checkpoints and the run record."""

    phase: str
    cfg: Any
    run_cfg: Any
    info: dist.DistInfo
    paths: Paths
    run_id: str
    ckpt_dir: Path
    stop: StopFlag
    device: Any
    dtype: Any
    tokenizer: Any
    data: PhaseData
    gpt_config: Any
    raw_model: Any      # parameters, state_dict, optimizers
    model: Any          # the same object with the fast training forward (prepare_for_training)
    optimizers: list
    grad_accum: int
    num_iterations: int
    flops_per_token: int
    peak: float | None
    start_step: int
    elapsed: float
    metrics: dict
    manifest: Manifest | None  # rank 0 only


def say(text: str, rank0: bool) -> None:
    if rank0:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _threads(cfg, local_world: int) -> int:
    return cfg.train.threads or max(1, usable_cpus() // max(1, local_world))


def _device(cfg, info):
    """The torch device of this rank, with the process group joined (a no-op for one process)."""
    import torch

    from nanochat_cli.model.precision import resolve_device

    device = resolve_device(cfg)
    device = torch.device(device) if not isinstance(device, torch.device) else device
    dist.init(cfg.dist.backend, device.type)
    return torch.device("cuda", info.local_rank) if device.type == "cuda" else device


def _claim_run(stack: ExitStack, paths: Paths, phase: str, requested: str | None, run_id: str | None,
               resume: bool, rank0: bool):
    """Rank 0 picks the run (train/which_run.py), takes its writer lock for the rest of the phase (held by
    `stack`) and checks the phase may start there; every rank learns the choice, or the same error."""
    from nanochat_cli.paths import ensure_writable_dir
    from nanochat_cli.train.which_run import check_phase_free, pick_run

    outcome = None
    if rank0:
        try:
            ensure_writable_dir(paths.runs)  # a read-only home: one line now, not a crash at the first save
            choice = pick_run(paths, phase, requested, run_id, resume)
            stack.enter_context(writing_run(paths, choice.run_id, f"train {phase}"))
            if not resume:
                check_phase_free(paths, choice.run_id, phase)
            outcome = choice
        except NanochatError as e:
            outcome = ("error", type(e).__name__, e.message, e.fix, e.exit_code)
    outcome = dist.broadcast_object(outcome)
    if isinstance(outcome, tuple):
        _, kind, message, fix, code = outcome
        raise {"PreflightError": PreflightError, "UsageError": UsageError}.get(kind, NanochatError)(message, fix, code)
    return outcome


def _resumable(meta: dict) -> str | None:
    """An exact resume needs every rank's data position and RNG state (check_meta validated their shape)."""
    missing = [k for k in ("loader", "rng") if k not in meta]
    return f"meta.json lacks {' and '.join(missing)} (cannot resume exactly)" if missing else None


def _starting_point(paths: Paths, phase: str, run_id: str, resume: bool, init_run: str | None, rank: int,
                    world_size: int, rank0: bool):
    """(checkpoint to resume, checkpoint whose weights initialise the model, init note). Both None = random."""
    from nanochat_cli.checkpoint_lookup import load_phase_checkpoint

    ckpt_dir = paths.run_checkpoints(run_id, phase)
    if resume:
        # One hashing pass: finds the newest checkpoint that verifies and loads, skipping (and naming) damaged ones.
        if not ck.list_steps(ckpt_dir):
            raise UsageError(f"nothing to resume: run {run_id!r} has no {phase} checkpoint",
                             f"start it with `nanochat train {phase} --run {run_id}`")
        loaded = ck.load_checkpoint(ckpt_dir, None, rank=rank, device="cpu", quiet=not rank0, accept=_resumable)
        if loaded.meta["world_size"] != world_size:
            raise UsageError(f"the {phase} checkpoint was saved by {loaded.meta['world_size']} processes, "
                             f"this run has {world_size}", f"resume with --nproc {loaded.meta['world_size']}")
        return loaded, None, f"resumed from {loaded.path}"
    if init_run is None:
        return None, None, "random init"
    pre = INIT_FROM[phase]
    try:
        found, loaded = load_phase_checkpoint(paths, pre, run=init_run, load_optimizer=False, quiet=not rank0)
    except UsageError as e:  # a prerequisite that is there but damaged: preflight, like one that is missing
        raise PreflightError(f"{phase} starts from run {init_run}'s {pre} model, and it is not usable: {e.message}",
                             f"train it again: `nanochat train {pre}`") from None
    return None, loaded, f"initialised from run {found.run} {pre} step {loaded.step} ({loaded.path})"


def _load_weights(model, state: dict, where: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise UsageError(f"the weights in {where} do not fit this model ({first[1].strip() if len(first) > 1 else e})",
                         "use the same model settings (depth, vocab) the checkpoint was trained with") from None


def _grad_accum(cfg, world_size: int) -> int:
    B, T = cfg.train.device_batch_size, cfg.model.seq_len
    per_micro = B * T * world_size
    if cfg.train.total_batch_size % per_micro:
        raise UsageError(f"train.total_batch_size {cfg.train.total_batch_size} is not a multiple of device_batch_size "
                         f"× seq_len × world = {B} × {T} × {world_size} = {per_micro}",
                         f"set train.total_batch_size to a multiple of {per_micro}")
    return cfg.train.total_batch_size // per_micro


def _continued_shape(configured, meta: dict, say):
    """A phase continues the model its checkpoint holds: that checkpoint's recorded model_config wins over the
    one cfg.model describes (an imported model's shape need not be the profile's), said when they differ."""
    from dataclasses import asdict

    from nanochat_cli.model.gpt import GPTConfig

    mc = meta.get("model_config")
    try:
        recorded = GPTConfig(**mc) if isinstance(mc, dict) and mc else None
    except (TypeError, ValueError):
        recorded = None
    if recorded is None or recorded == configured:
        return configured
    differ = ", ".join(f"{k} {v}" for k, v in asdict(recorded).items() if getattr(configured, k) != v)
    say(f"note: the model keeps the shape of the checkpoint it starts from ({differ}), not the config's")
    return recorded


def _build_model(cfg, device, dtype, tokenizer, start_meta: dict | None, rank0: bool):
    """(gpt_config, raw model, training model): the reference GPT — in the shape of the checkpoint it starts
    from, if any — or the learner's own (learn mode), which trains as written: prepare_for_training would swap
    in the reference's fused forward, loss head and attention kernel, and their code would never run."""
    import torch

    from nanochat_cli.model.compiled import prepare_for_training
    from nanochat_cli.model.gpt import GPT, GPTConfig

    torch.manual_seed(cfg.train.seed)
    gpt_config = GPTConfig.from_config(cfg, tokenizer.vocab_size)
    if start_meta is not None and cfg.model.file is None:
        gpt_config = _continued_shape(gpt_config, start_meta, lambda text: say(text, rank0))
    if cfg.model.file is not None:
        from nanochat_cli.learn.loader import build_user_model, load_user_model_class

        raw_model = build_user_model(load_user_model_class(cfg.model.file), gpt_config, device, dtype)
        return gpt_config, raw_model, raw_model
    with torch.device(device):
        raw_model = GPT(gpt_config)
    raw_model.init_weights()
    return gpt_config, raw_model, prepare_for_training(raw_model, cfg, device, dtype)


def setup_phase(stack: ExitStack, cfg, phase: str, resume: bool, run_id: str | None, tokenizer,
                data: PhaseData | None, manifest: Manifest | None) -> PhaseState:
    """Everything `phase` needs before its first step (see the module docstring); the run lock and the
    signal handlers live on `stack`."""
    info = dist.dist_info()
    if info.world_size != cfg.world_size:  # launched by torchrun directly: the launcher decides the world
        cfg.dist.nproc = info.local_world_size
        cfg.dist.nnodes = max(1, info.world_size // info.local_world_size)
    # mid/SFT train with their own batch sizes, LRs and schedule; the run records the config as given.
    run_cfg, cfg = cfg, phase_view(cfg, phase)
    grad_accum = _grad_accum(cfg, info.world_size)
    rank0 = info.is_rank0
    # From here on Ctrl-C/SIGTERM/SIGUSR2 stop at a step boundary (before the first step: nothing to save).
    stop = stack.enter_context(StopFlag(say=lambda text: say(text, rank0)))
    paths = Paths.of(cfg)
    device = _device(cfg, info) if info.is_distributed else None  # ranks share the run choice: join first

    # ----- which run (locked) and what it starts from, before anything expensive
    choice = _claim_run(stack, paths, phase, cfg.track.run, run_id, resume, rank0)
    import torch

    device = device or _device(cfg, info)
    resume_ckpt, init_ckpt, init_note = _starting_point(paths, phase, choice.run_id, resume, choice.init_run,
                                                        info.rank, info.world_size, rank0)
    start_from = resume_ckpt or init_ckpt

    # ----- tokenizer (the starting checkpoint's own), then data: its preflight runs before any model
    if tokenizer is None:
        tokenizer = load_phase_tokenizer(cfg, (start_from.meta.get("tokenizer") if start_from else None),
                                         where=str(start_from.path) if start_from else None)
    if data is None:
        data = build_phase_data(cfg, phase, tokenizer, info.rank, info.world_size, init_problem=choice.init_problem)

    # ----- model and optimizers
    from nanochat_cli.model.optim import build_optimizers
    from nanochat_cli.model.precision import resolve_dtype

    torch.set_num_threads(_threads(cfg, info.local_world_size))
    dtype, dtype_reason = resolve_dtype(cfg, device)
    gpt_config, raw_model, model = _build_model(cfg, device, dtype, tokenizer,
                                                start_from.meta if start_from is not None else None, rank0)
    if start_from is not None:
        _load_weights(raw_model, start_from.model_state, start_from.path)
    optimizers = build_optimizers(raw_model, cfg, world_size=info.world_size)
    n_params = sum(p.numel() for p in raw_model.parameters())
    num_iterations = data.num_iterations if data.num_iterations is not None else base_num_iterations(cfg, n_params)

    state = PhaseState(phase, cfg, run_cfg, info, paths, choice.run_id, paths.run_checkpoints(choice.run_id, phase),
                       stop, device, dtype, tokenizer, data, gpt_config, raw_model, model, optimizers, grad_accum,
                       num_iterations, raw_model.estimate_flops(), peak_flops(device), 0, 0.0, {}, manifest)
    if resume_ckpt is not None:
        _restore(state, resume_ckpt)
    _start_record(state, resume, init_ckpt)
    say(f"{phase}: d{cfg.model.depth}, {n_params:,} params, {num_iterations} steps × "
        f"{cfg.train.total_batch_size:,} tokens (grad accum {grad_accum}, world {info.world_size}), "
        f"{device.type} {str(dtype).removeprefix('torch.')} ({dtype_reason}); {init_note}; run {choice.run_id}", rank0)
    if data.summary:
        say(f"{phase} data: {data.summary}", rank0)
    return state


def _restore(state: PhaseState, ckpt) -> None:
    """An exact resume: optimizer state, step, clock, metrics, this rank's data position and RNG states."""
    for opt, saved in zip(state.optimizers, ckpt.optim_state):
        opt.load_state_dict(saved)
    state.start_step = ckpt.step
    state.elapsed = float(ckpt.meta.get("train_seconds", 0.0))
    state.metrics = dict(ckpt.meta.get("metrics", {}))
    state.data.train.load_state_dict(ckpt.meta["loader"][state.info.rank])
    ck.set_rng_state(ckpt.meta["rng"][state.info.rank])
    if ckpt.meta.get("num_iterations") not in (None, state.num_iterations):
        say(f"warning: num_iterations changed from {ckpt.meta['num_iterations']} to {state.num_iterations} "
            "(the LR schedule follows the new value)", state.info.is_rank0)


def _start_record(state: PhaseState, resume: bool, init_ckpt) -> None:
    """Rank 0: the run's manifest says the phase runs (and where it started from); a fresh phase stores the
    config it started with, which `resume` of this phase reads (the run's config.toml is its first phase's,
    and a later phase may have been started with other flags)."""
    if not state.info.is_rank0:
        return
    from nanochat_cli.config import config_to_toml_dict
    from nanochat_cli.config_sources import dump_toml
    from nanochat_cli.paths import atomic_write_text

    state.manifest = state.manifest or Manifest.create(state.paths, state.run_id, state.run_cfg, [state.phase])
    if not resume:
        atomic_write_text(state.paths.run_dir(state.run_id) / f"config-{state.phase}.toml",
                          dump_toml(config_to_toml_dict(state.run_cfg)))
    init_from = ({"run": init_ckpt.meta.get("run_id"), "phase": init_ckpt.meta.get("phase"), "step": init_ckpt.step,
                  "path": str(init_ckpt.path)} if init_ckpt is not None else None)
    state.manifest.update_phase(state.phase, status=RUNNING, num_iterations=state.num_iterations,
                                checkpoint_dir=str(state.ckpt_dir), **({"init_from": init_from} if init_from else {}))
