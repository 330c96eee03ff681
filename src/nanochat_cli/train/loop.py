"""THE training loop, used by base, mid and SFT alike; phases differ only by the `PhaseData` they plug in
(phases.py): data stream, validation data and the checkpoint they start from.

It reads top to bottom like nanochat's base_train: set up (process group, tokenizer, data, model,
optimizers, maybe a checkpoint to resume), then `while True:` with `last_step` decided first so that
eval, sampling and the checkpoint run once more at the end, then one optimizer step of `grad_accum`
micro-batches, then logging. Everything a step depends on (weights, optimizer, RNG, data position,
step) is in the checkpoint and the schedule is a pure function of the step, so a resume repeats the
uninterrupted run bit for bit on CPU. SIGTERM/SIGUSR2 and Ctrl-C (SIGINT) only set a flag; the loop saves
at the next step boundary and returns `interrupted` (the CLI exits 130 after Ctrl-C, EXIT_PREEMPTED = 75
after SIGTERM/SIGUSR2 so Slurm scripts can requeue). A second Ctrl-C aborts at once; checkpoints are
written to a temp dir and renamed, so even that never leaves a torn one. Rank 0 holds the run's lock
(runs.writing_run) for the whole phase: a second writer of the same run stops with one line.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanochat_cli import checkpoint as ck
from nanochat_cli.errors import NanochatError, PreflightError, UsageError
from nanochat_cli.paths import Paths
from nanochat_cli.runs import DONE, FAILED, INTERRUPTED, RUNNING, Manifest, writing_run
from nanochat_cli.signals import StopFlag, exit_code_for
from nanochat_cli.train import dist
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
    signal: str | None = None  # what stopped an interrupted phase: "SIGINT", "SIGTERM", "SIGUSR2"

    @property
    def exit_code(self) -> int:
        """0 done; 130 after Ctrl-C (the shell's convention); EXIT_PREEMPTED after SIGTERM/SIGUSR2."""
        return 0 if self.status == DONE else exit_code_for(self.signal)


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
    from nanochat_cli.data.download import ensure_writable_dir
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
    from nanochat_cli.train.phases import INIT_FROM

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


def run_phase(cfg, phase: str, *, resume: bool = False, run_id: str | None = None, tokenizer=None,
              data: PhaseData | None = None, manifest: Manifest | None = None) -> PhaseResult:
    """Train `phase` ("base", "mid", "sft") with `cfg` in a run (train/which_run.py picks it when `run_id` is
    None); with `resume`, continue that run's phase from its newest valid checkpoint exactly.
    `tokenizer`/`data` override what the phase would load (tests, learn mode)."""
    with ExitStack() as stack:
        return _run_phase(stack, cfg, phase, resume, run_id, tokenizer, data, manifest)


def _run_phase(stack: ExitStack, cfg, phase: str, resume: bool, run_id: str | None, tokenizer,
               data: PhaseData | None, manifest: Manifest | None) -> PhaseResult:
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
    rank0 = info.is_rank0
    # From here on Ctrl-C/SIGTERM/SIGUSR2 stop at a step boundary (before the first step: nothing to save).
    stop = stack.enter_context(StopFlag(say=lambda text: _say(text, rank0)))
    paths = Paths.of(cfg)
    device = None
    if info.is_distributed:  # the ranks must share the run choice: join the group first
        device = _device(cfg, info)
    # ----- which run (locked), and what it starts from (decided before building anything expensive; in
    # one process before torch is even imported, so a second writer is told in about a second)
    choice = _claim_run(stack, paths, phase, cfg.track.run, run_id, resume, rank0)
    import torch

    device = device or _device(cfg, info)
    run_id = choice.run_id
    ckpt_dir = paths.run_checkpoints(run_id, phase)
    resume_ckpt, init_ckpt, init_note = _starting_point(paths, phase, run_id, resume, choice.init_run, info.rank,
                                                        info.world_size, rank0)
    start_from = resume_ckpt or init_ckpt

    # ----- tokenizer (the one the starting checkpoint was trained with), data: preflight before any model
    if tokenizer is None:
        tokenizer = load_phase_tokenizer(cfg, (start_from.meta.get("tokenizer") if start_from else None),
                                         where=str(start_from.path) if start_from else None)
    data = data if data is not None else build_phase_data(cfg, phase, tokenizer, info.rank, info.world_size,
                                                          init_problem=choice.init_problem)
    from nanochat_cli.model.gpt import GPT, GPTConfig, prepare_for_training
    from nanochat_cli.model.optim import build_optimizers

    if cfg.model.file is not None:  # learn mode: the learner's own GPT, checked to be a drop-in
        from nanochat_cli.learn.loader import load_user_model_class

        GPT = load_user_model_class(cfg.model.file)
    from nanochat_cli.model.precision import resolve_dtype

    torch.set_num_threads(_threads(cfg, info.local_world_size))
    dtype, dtype_reason = resolve_dtype(cfg, device)

    # ----- model and optimizers
    torch.manual_seed(cfg.train.seed)
    gpt_config = GPTConfig.from_config(cfg, tokenizer.vocab_size)
    if start_from is not None and cfg.model.file is None:
        gpt_config = _continued_shape(gpt_config, start_from.meta, lambda text: _say(text, rank0))
    if cfg.model.file is not None:
        from nanochat_cli.learn.loader import build_user_model

        raw_model = build_user_model(cfg.model.file, gpt_config, device, dtype)  # their GPT, their init
    else:
        with torch.device(device):
            raw_model = GPT(gpt_config)
        raw_model.init_weights()
    if start_from is not None:
        _load_weights(raw_model, start_from.model_state, start_from.path)
    init_meta = {"run": init_ckpt.meta.get("run_id"), "phase": init_ckpt.meta.get("phase"), "step": init_ckpt.step,
                 "path": str(init_ckpt.path)} if init_ckpt is not None else None
    init_ckpt = start_from = None  # free the loaded tensors
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
        ck.set_rng_state(resume_ckpt.meta["rng"][info.rank])
        if resume_ckpt.meta.get("num_iterations") not in (None, num_iterations):
            _say(f"warning: num_iterations changed from {resume_ckpt.meta['num_iterations']} to {num_iterations} "
                 "(the LR schedule follows the new value)", rank0)
    resume_ckpt = None  # free the loaded tensors

    # ----- run bookkeeping (rank 0 writes)
    if rank0:
        manifest = manifest or Manifest.create(paths, run_id, run_cfg, [phase])
        if not resume:
            from nanochat_cli.config import config_to_toml_dict, dump_toml
            from nanochat_cli.paths import atomic_write_text

            # The config this phase started with: `resume` of this phase reads it (the run's config.toml is
            # the first phase's, and a later phase may have been started with other flags).
            atomic_write_text(paths.run_dir(run_id) / f"config-{phase}.toml", dump_toml(config_to_toml_dict(run_cfg)))
        manifest.update_phase(phase, status=RUNNING, num_iterations=num_iterations, checkpoint_dir=str(ckpt_dir),
                              **({"init_from": init_meta} if init_meta else {}))
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

            # --- checkpoint: periodic, at the end, and when asked to stop (not before a fresh phase's
            # first step: a random init is nothing to resume)
            due = cfg.train.save_every > 0 and step % cfg.train.save_every == 0 and step > 0
            if (last_step or due or (stopping and step > 0)) and last_saved != step:
                save(step)
                last_saved = step
            if last_step:
                break
            if stopping:
                status = INTERRUPTED
                by = {"SIGINT": "Ctrl-C", None: "a signal on another rank"}.get(stop.name, stop.name)
                where = (f"checkpoint {ckpt_dir / ck.step_dir_name(step)}" if last_saved == step
                         else "no checkpoint (no step was trained yet)")
                progress.message(f"{phase}: stopped by {by} at step {step}; {where} — "
                                 f"`nanochat resume --run {run_id}` continues exactly here")
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
    except BaseException as e:
        if rank0 and manifest is not None:
            # A second Ctrl-C aborts mid-step: the last saved checkpoint is intact and resumable.
            manifest.update_phase(phase, status=INTERRUPTED if isinstance(e, KeyboardInterrupt) else FAILED,
                                  step=last_saved if last_saved is not None else start_step)
        raise
    finally:
        progress.close()
        tracker.close()
        close = getattr(data.train, "close", None)
        if callable(close):
            close()

    ckpt_path = str(ckpt_dir / ck.step_dir_name(step)) if last_saved == step else None
    if rank0:
        manifest.update_phase(phase, status=status, step=step, checkpoint=ckpt_path, metrics=dict(metrics),
                              train_seconds=round(elapsed, 3))
    return PhaseResult(phase=phase, status=status, step=step, num_iterations=num_iterations, checkpoint=ckpt_path,
                       run_id=run_id, run_dir=str(paths.run_dir(run_id)), metrics=dict(metrics), signal=stop.name)


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


def _load_weights(model, state: dict, where: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise UsageError(f"the weights in {where} do not fit this model ({first[1].strip() if len(first) > 1 else e})",
                         "use the same model settings (depth, vocab) the checkpoint was trained with") from None
