"""THE training loop, used by base, mid and SFT alike; phases differ only by the `PhaseData` they plug in
(phases.py): data stream, validation data and the checkpoint they start from.

It reads top to bottom like nanochat's base_train: set up (process group, tokenizer, data, model,
optimizers, maybe a checkpoint to resume), then `while True:` with `last_step` decided first so that
eval, sampling and the checkpoint run once more at the end, then one optimizer step of `grad_accum`
micro-batches, then logging. Everything a step depends on (weights, optimizer, RNG, data position,
step) is in the checkpoint and the schedule is a pure function of the step, so a resume repeats the
uninterrupted run bit for bit on CPU. SIGTERM/SIGUSR2 only set a flag; the loop saves at the next step
boundary and returns `interrupted` (the CLI exits EXIT_PREEMPTED = 75 so Slurm scripts can requeue).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanochat_cli.errors import NanochatError, UsageError
from nanochat_cli.paths import Paths
from nanochat_cli.train import checkpoint as ck
from nanochat_cli.train import dist
from nanochat_cli.train.manifest import DONE, FAILED, INTERRUPTED, RUNNING, Manifest, resolve_run_id
from nanochat_cli.train.phases import PhaseData, build_phase_data, load_phase_tokenizer
from nanochat_cli.train.progress import Progress, peak_flops
from nanochat_cli.train.schedule import apply_schedule

SAMPLE_PROMPTS = ["The capital of France is", "In the beginning", "If yesterday was Friday, then tomorrow will be"]


@dataclass
class PhaseResult:
    phase: str
    status: str  # "done" or "interrupted"
    step: int
    num_iterations: int
    checkpoint: str | None
    run_id: str
    run_dir: str
    metrics: dict[str, Any] = field(default_factory=dict)


class _StopFlag:
    """SIGTERM/SIGUSR2 → stop at the next step boundary (handlers only set a flag: saving inside a signal
    handler could interleave with a half-done optimizer step)."""

    SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR2", None)) if s)

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        if threading_is_main():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _say(text: str, rank0: bool) -> None:
    if rank0:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _threads(cfg, local_world: int) -> int:
    if cfg.train.threads:
        return cfg.train.threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, local_world))


def derive_num_iterations(cfg, n_params: int) -> int:
    """cfg.train.num_iterations, or target_param_data_ratio × params / tokens per step when it is -1."""
    if cfg.train.num_iterations >= 0:
        return cfg.train.num_iterations
    tokens = cfg.train.target_param_data_ratio * n_params
    return max(1, int(tokens // cfg.train.total_batch_size))


def _checkpoint_meta(cfg, phase, run_id, tokenizer, gpt_config, num_iterations, metrics, loader_states, rng_states,
                     elapsed) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    from nanochat_cli.config import config_to_toml_dict

    return {
        "phase": phase, "run_id": run_id, "config": config_to_toml_dict(cfg),
        "model_config": asdict(gpt_config) if is_dataclass(gpt_config) else dict(vars(gpt_config)),
        "tokenizer": {"kind": cfg.tokenizer.kind, "vocab_size": tokenizer.vocab_size,
                      "fingerprint": getattr(tokenizer, "fingerprint", None)},
        "num_iterations": num_iterations, "metrics": metrics, "loader": loader_states, "rng": rng_states,
        "train_seconds": elapsed, "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _sample(model, tokenizer, device, max_new_tokens: int = 16) -> list[str]:
    """Greedy continuations of a few prompts (no KV cache: a handful of tokens, once in a while). Uses no
    global RNG, so sampling never changes what training does next."""
    import torch

    out = []
    raw = getattr(model, "_orig_mod", model)
    plain = type(raw).forward.__get__(raw)  # not the compiled training forward: lengths change every token
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for prompt in SAMPLE_PROMPTS:
                ids = tokenizer.encode(prompt, prepend=tokenizer.bos_id)
                x = torch.tensor([ids], dtype=torch.long, device=device)
                for _ in range(max_new_tokens):
                    logits = plain(x[:, -model_seq_len(model):])
                    nxt = logits[0, -1, : tokenizer.vocab_size].argmax()
                    x = torch.cat([x, nxt.view(1, 1)], dim=1)
                out.append(tokenizer.decode(x[0].tolist()[1:]))
    finally:
        model.train(was_training)
    return out


def model_seq_len(model) -> int:
    raw = getattr(model, "_orig_mod", model)
    return getattr(getattr(raw, "config", None), "seq_len", 10**9)


def run_phase(cfg, phase: str, *, resume: bool = False, run_id: str | None = None, tokenizer=None,
              data: PhaseData | None = None, manifest: Manifest | None = None) -> PhaseResult:
    """Train `phase` ("base", "mid", "sft") with `cfg`; with `resume`, continue from its newest valid
    checkpoint exactly. `tokenizer`/`data` override what the phase would load (tests, learn mode)."""
    import torch

    from nanochat_cli.track import Tracker
    from nanochat_cli.train.chat_phases import phase_view

    # ----- processes, device, threads
    info = dist.dist_info()
    if info.world_size != cfg.world_size:  # launched by torchrun directly: the launcher decides the world
        cfg.dist.nproc = info.local_world_size
        cfg.dist.nnodes = max(1, info.world_size // info.local_world_size)
    # mid/SFT train with their own batch sizes, LRs and schedule; the run records the config as given.
    run_cfg, cfg = cfg, phase_view(cfg, phase)
    B, T = cfg.train.device_batch_size, cfg.model.seq_len
    per_micro = B * T * info.world_size
    if cfg.train.total_batch_size % per_micro:
        raise UsageError(f"train.total_batch_size {cfg.train.total_batch_size} is not a multiple of device_batch_size "
                         f"× seq_len × world = {B} × {T} × {info.world_size} = {per_micro}",
                         f"set train.total_batch_size to a multiple of {per_micro}")
    grad_accum = cfg.train.total_batch_size // per_micro
    # Preflight first (tokenizer, data), cheap; the model package is imported only after it passes.
    tokenizer = tokenizer if tokenizer is not None else load_phase_tokenizer(cfg)
    from nanochat_cli.model.gpt import GPT, GPTConfig, prepare_for_training
    from nanochat_cli.model.optim import build_optimizers
    from nanochat_cli.model.precision import resolve_device, resolve_dtype

    if cfg.model.file is not None:  # learn mode: the learner's own GPT, checked to be a drop-in
        from nanochat_cli.learn.loader import load_user_model_class

        GPT = load_user_model_class(cfg.model.file)
    device = resolve_device(cfg)
    device = torch.device(device) if not isinstance(device, torch.device) else device
    dist.init(cfg.dist.backend, device.type)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    rank0 = info.is_rank0
    torch.set_num_threads(_threads(cfg, info.local_world_size))
    dtype, dtype_reason = resolve_dtype(cfg, device)
    paths = Paths.of(cfg)
    ckpt_dir = paths.checkpoint_dir(phase, cfg.model.depth)

    # ----- what we resume from (decided before building anything expensive)
    resume_ckpt = None
    if resume:
        # One hashing pass: finds the newest checkpoint that verifies, skipping (and naming) damaged ones.
        if not ck.list_steps(ckpt_dir):
            raise UsageError(f"nothing to resume: no complete {phase} checkpoint in {ckpt_dir}",
                             f"start it with `nanochat train {phase}`")
        resume_ckpt = ck.load_checkpoint(ckpt_dir, None, rank=info.rank, device="cpu", quiet=not rank0)
        if resume_ckpt.meta.get("world_size", 1) != info.world_size:
            raise UsageError(f"the {phase} checkpoint was saved by {resume_ckpt.meta.get('world_size')} processes, "
                             f"this run has {info.world_size}",
                             f"resume with --nproc {resume_ckpt.meta.get('world_size')}")
        run_id = run_id or resume_ckpt.meta.get("run_id")
    if run_id is None:
        run_id = dist.broadcast_object(resolve_run_id(cfg.track.run) if rank0 else None)

    # ----- tokenizer check, data (preflight: fails before any model is built)
    if resume_ckpt is not None:
        fp = resume_ckpt.meta.get("tokenizer", {}).get("fingerprint")
        if fp and fp != getattr(tokenizer, "fingerprint", None):
            raise UsageError(f"the tokenizer changed since the {phase} checkpoint was saved",
                             "restore the tokenizer the run was trained with (its sha256 is in meta.json)")
    data = data if data is not None else build_phase_data(cfg, phase, tokenizer, info.rank, info.world_size)

    # ----- model and optimizers
    torch.manual_seed(cfg.train.seed)
    gpt_config = GPTConfig.from_config(cfg, tokenizer.vocab_size)
    if cfg.model.file is not None:
        from nanochat_cli.learn.loader import build_user_model

        raw_model = build_user_model(cfg.model.file, gpt_config, device, dtype)  # their GPT, their init
    else:
        with torch.device(device):
            raw_model = GPT(gpt_config)
        raw_model.init_weights()
    init_note = "random init"
    if resume_ckpt is not None:
        _load_weights(raw_model, resume_ckpt.model_state, resume_ckpt.path)
        init_note = f"resumed from {resume_ckpt.path}"
    elif data.init_from is not None:
        src_dir = paths.checkpoint_dir(data.init_from, cfg.model.depth)
        src = ck.load_checkpoint(src_dir, None, device="cpu", load_optimizer=False)
        if src.meta.get("phase") not in (None, data.init_from):
            raise NanochatError(f"{src.path} is not a {data.init_from} checkpoint")
        _load_weights(raw_model, src.model_state, src.path)
        init_note = f"initialised from {src.path}"
    # A learner's model trains as written: prepare_for_training would swap in the reference's fused
    # forward, loss head and attention kernel, and their code would never run.
    model = raw_model if cfg.model.file is not None else prepare_for_training(raw_model, cfg, device, dtype)
    optimizers = build_optimizers(raw_model, cfg, world_size=info.world_size)
    n_params = sum(p.numel() for p in raw_model.parameters())
    num_iterations = data.num_iterations if data.num_iterations is not None else derive_num_iterations(cfg, n_params)
    flops_per_token = raw_model.estimate_flops()
    peak = peak_flops(device)
    autocast = (torch.amp.autocast(device_type="cuda", dtype=dtype)
                if device.type == "cuda" and dtype != torch.float32 else nullcontext())

    start_step, elapsed, metrics = 0, 0.0, {}
    if resume_ckpt is not None:
        for opt, state in zip(optimizers, resume_ckpt.optim_state):
            opt.load_state_dict(state)
        start_step = resume_ckpt.step
        elapsed = float(resume_ckpt.meta.get("train_seconds", 0.0))
        metrics = dict(resume_ckpt.meta.get("metrics", {}))
        data.train.load_state_dict(resume_ckpt.meta["loader"][info.rank])
        rng = resume_ckpt.meta.get("rng") or []
        if len(rng) > info.rank:
            ck.set_rng_state(rng[info.rank])
        if resume_ckpt.meta.get("num_iterations") not in (None, num_iterations):
            _say(f"warning: num_iterations changed from {resume_ckpt.meta['num_iterations']} to {num_iterations} "
                 "(the LR schedule follows the new value)", rank0)
    elif rank0 and ck.list_steps(ckpt_dir):
        # A fresh run must not mix its checkpoints with an older run's: move those aside, never delete.
        aside = ckpt_dir.with_name(f"{ckpt_dir.name}.before-{run_id}")
        os.rename(ckpt_dir, aside)
        _say(f"note: existing {phase} checkpoints moved to {aside} (use `nanochat resume` to continue a run)", rank0)
    resume_ckpt = None  # free the loaded tensors

    # ----- run bookkeeping (rank 0 writes)
    if rank0:
        manifest = manifest or Manifest.create(paths, run_id, run_cfg, [phase])
        manifest.update_phase(phase, status=RUNNING, num_iterations=num_iterations, checkpoint_dir=str(ckpt_dir))
    tracker = Tracker(cfg, paths.run_dir(run_id), run_id, phase, enabled=rank0,
                      resume_step=start_step if start_step else None)
    progress = Progress(phase, num_iterations, start_step, enabled=rank0)
    progress.message(f"{phase}: d{cfg.model.depth}, {n_params:,} params, {num_iterations} steps × "
                     f"{cfg.train.total_batch_size:,} tokens (grad accum {grad_accum}, world {info.world_size}), "
                     f"{device.type} {str(dtype).removeprefix('torch.')} ({dtype_reason}); {init_note}; run {run_id}")
    if data.summary:
        progress.message(f"{phase} data: {data.summary}")

    def save(step: int) -> Path:
        loader_states = dist.gather_objects(data.train.state_dict())
        rng_states = dist.gather_objects(ck.rng_state())
        t0 = time.time()
        path = ck.save_checkpoint(
            ckpt_dir, step, raw_model.state_dict(), [o.state_dict() for o in optimizers],
            _checkpoint_meta(run_cfg, phase, run_id, tokenizer, gpt_config, num_iterations, metrics, loader_states,
                             rng_states, elapsed),
            rank=info.rank, world_size=info.world_size, keep_last=cfg.train.keep_last, barrier=dist.barrier)
        if rank0:
            manifest.update_phase(phase, checkpoint=str(path), step=step, metrics=dict(metrics))
            progress.message(f"saved {path} ({1000 * (time.time() - t0):.0f} ms)")
        return path

    def guarded(what: str, step: int, fn):
        """Periodic eval/sampling: a failure is reported and training goes on."""
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - by design: never let an eval kill a run
            progress.message(f"warning: {what} failed at step {step}: {e.__class__.__name__}: {e} (training continues)")
            tracker.log({"step": step, f"{what}_error": f"{e.__class__.__name__}: {e}"})
            return None

    token_bytes = None
    last_saved = start_step if start_step else None
    status, step = DONE, start_step
    try:
        with _StopFlag() as stop:
            while True:
                last_step = step == num_iterations
                fresh_here = step != start_step or start_step == 0  # a resume already did these at start_step
                stopping = dist.any_rank(stop.signum is not None)

                # --- periodic validation bpb (also once at the end)
                if data.val is not None and fresh_here and (
                        last_step or (cfg.train.eval_every > 0 and step % cfg.train.eval_every == 0)):
                    def _eval():
                        from nanochat_cli.eval.bpb import evaluate_bpb, token_byte_lengths

                        nonlocal token_bytes
                        token_bytes = token_bytes if token_bytes is not None else token_byte_lengths(tokenizer)
                        return evaluate_bpb(model, data.val(), token_bytes, device, autocast)

                    bpb = guarded("eval", step, _eval)
                    if bpb is not None:
                        metrics["val_bpb"] = bpb
                        tracker.log({"step": step, "val_bpb": bpb})
                        progress.message(f"step {step}: val bpb {bpb:.4f}")

                # --- periodic samples (rank 0; also at the end)
                if rank0 and fresh_here and cfg.train.sample_every > 0 and (
                        last_step or step % cfg.train.sample_every == 0):
                    samples = guarded("sample", step, lambda: _sample(model, tokenizer, device))
                    if samples:
                        tracker.log({"step": step, "samples": samples})
                        for s in samples:
                            progress.message(f"sample: {s!r}")

                # --- checkpoint: periodic, at the end, and when asked to stop
                due = cfg.train.save_every > 0 and step % cfg.train.save_every == 0 and step > 0
                if (last_step or due or stopping) and last_saved != step:
                    save(step)
                    last_saved = step
                if last_step:
                    break
                if stopping:
                    status = INTERRUPTED
                    name = signal.Signals(stop.signum).name if stop.signum else "a signal on another rank"
                    progress.message(f"{phase}: stopped by {name} at step {step}; checkpoint saved — "
                                     "`nanochat resume` continues exactly here")
                    break

                # --- one optimizer step: grad_accum micro-batches, then the schedule, then the update
                t_step = time.time()  # eval/save time above is not step time
                loss_sum = None
                for _ in range(grad_accum):
                    x, y = next(data.train)
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    with autocast:
                        loss = model(x, y)
                    (loss / grad_accum).backward()
                    loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
                lrm = apply_schedule(optimizers, step, num_iterations, cfg.train)
                for opt in optimizers:
                    opt.step()
                raw_model.zero_grad(set_to_none=True)
                loss_avg = loss_sum / grad_accum
                if info.is_distributed:  # log the global batch's loss, not rank 0's share of it
                    torch.distributed.all_reduce(loss_avg)
                    loss_avg = loss_avg / info.world_size
                train_loss = loss_avg.item()  # CPU–GPU sync, once per step
                step += 1

                # --- logging
                now = time.time()
                dt, t_step = now - t_step, now
                elapsed += dt
                tok_s = cfg.train.total_batch_size / dt if dt > 0 else 0.0
                mfu = 100 * flops_per_token * tok_s / (peak * info.world_size) if peak else None
                metrics["loss"] = train_loss
                rec = {"step": step, "loss": train_loss, "lrm": lrm, "dt_ms": 1000 * dt, "tok_per_s": tok_s}
                if mfu is not None:
                    rec["mfu"] = mfu
                tracker.log(rec)
                progress.update(step, train_loss, tok_s, mfu)
    except BaseException:
        if rank0 and manifest is not None:
            manifest.update_phase(phase, status=FAILED, step=step)
        raise
    finally:
        progress.close()
        tracker.close()
        close = getattr(data.train, "close", None)
        if callable(close):
            close()

    ckpt_path = str(ckpt_dir / ck.step_dir_name(step))
    if rank0:
        manifest.update_phase(phase, status=status, step=step, checkpoint=ckpt_path, metrics=dict(metrics),
                              train_seconds=round(elapsed, 3))
    return PhaseResult(phase=phase, status=status, step=step, num_iterations=num_iterations, checkpoint=ckpt_path,
                       run_id=run_id, run_dir=str(paths.run_dir(run_id)), metrics=dict(metrics))


def _load_weights(model, state: dict, where: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise UsageError(f"the weights in {where} do not fit this model ({first[1].strip() if len(first) > 1 else e})",
                         "use the same model settings (depth, vocab) the checkpoint was trained with") from None
