"""THE training loop, used by base, mid and SFT alike; phases differ only by the `PhaseData` they plug in
(phases.py): data stream, validation data and the checkpoint they start from.

`run_phase` = `setup_phase` (setup.py: run, lock, starting checkpoint, tokenizer, data, model, optimizers,
resume) + the loop below, which reads top to bottom like nanochat's base_train: `while True:` with
`last_step` decided first so that eval, sampling and the checkpoint run once more at the end, then one
optimizer step of `grad_accum` micro-batches (`train_step`), then logging. Everything a step depends on
(weights, optimizer, RNG, data position, step) is in the checkpoint and the schedule is a pure function of the
step, so a resume repeats the uninterrupted run bit for bit on CPU. SIGTERM/SIGUSR2 and Ctrl-C (SIGINT) only
set a flag; the loop saves at the next step boundary and returns `interrupted` (the CLI exits 130 after
Ctrl-C, EXIT_PREEMPTED = 75 after SIGTERM/SIGUSR2 so Slurm scripts can requeue). A second Ctrl-C aborts at
once; checkpoints are written to a temp dir and renamed, so even that never leaves a torn one.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanochat_cli import checkpoint as ck
from nanochat_cli import dist
from nanochat_cli.runs import DONE, FAILED, INTERRUPTED, Manifest
from nanochat_cli.signals import exit_code_for
from nanochat_cli.train.phase_data import PhaseData, StepStats
from nanochat_cli.train.progress import Progress
from nanochat_cli.train.schedule import apply_schedule
from nanochat_cli.train.setup import PhaseState, setup_phase

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


def run_phase(cfg, phase: str, *, resume: bool = False, run_id: str | None = None, tokenizer=None,
              data: PhaseData | None = None, manifest: Manifest | None = None) -> PhaseResult:
    """Train `phase` ("base", "mid", "sft") with `cfg` in a run (train/which_run.py picks it when `run_id` is
    None); with `resume`, continue that run's phase from its newest valid checkpoint exactly.
    `tokenizer`/`data` override what the phase would load (tests, learn mode)."""
    with ExitStack() as stack:  # holds the run's lock and the signal handlers until the phase ends
        state = setup_phase(stack, cfg, phase, resume, run_id, tokenizer, data, manifest)
        return train_loop(state)


def train_step(s: PhaseState, step: int) -> StepStats:
    """One optimizer step: `grad_accum` micro-batches, the schedule for `step`, the update; the loss is the
    global batch's mean."""
    loss_sum = None
    for _ in range(s.grad_accum):
        x, y = next(s.data.train)
        x, y = x.to(s.device, non_blocking=True), y.to(s.device, non_blocking=True)
        loss = s.model(x, y)  # bf16 where chosen: explicit casts inside the model (model/gpt.py), no autocast
        (loss / s.grad_accum).backward()
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
    lrm = apply_schedule(s.optimizers, step, s.num_iterations, s.cfg.train)
    for opt in s.optimizers:
        opt.step()
    s.raw_model.zero_grad(set_to_none=True)
    loss_avg = loss_sum / s.grad_accum
    if s.info.is_distributed:  # log the global batch's loss, not rank 0's share of it
        import torch.distributed as tdist

        tdist.all_reduce(loss_avg)
        loss_avg = loss_avg / s.info.world_size
    return StepStats(loss_avg.item(), lrm, s.cfg.train.total_batch_size)  # .item(): the one CPU–GPU sync per step


def train_loop(s: PhaseState) -> PhaseResult:
    from nanochat_cli.track import Tracker

    cfg, rank0 = s.cfg, s.info.is_rank0
    tracker = Tracker(cfg, s.paths.run_dir(s.run_id), s.run_id, s.phase, enabled=rank0,
                      resume_step=s.start_step if s.start_step else None)
    progress = Progress(s.phase, s.num_iterations, s.start_step, enabled=rank0)

    def guarded(what: str, step: int, fn):
        """Periodic eval/sampling: a failure is reported and training goes on."""
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - by design: never let an eval kill a run
            progress.message(f"warning: {what} failed at step {step}: {e.__class__.__name__}: {e} (training continues)")
            tracker.log({"step": step, f"{what}_error": f"{e.__class__.__name__}: {e}"})
            return None

    evaluate = s.data.evaluate or _val_bpb(s)
    step_fn = s.data.step or train_step
    last_saved = s.start_step if s.start_step else None
    status, step = DONE, s.start_step
    try:
        while True:
            last_step = step == s.num_iterations
            fresh_here = step != s.start_step or s.start_step == 0  # a resume already did these at start_step
            stopping = dist.any_rank(s.stop.signum is not None)

            # --- periodic evaluation: validation bpb, or the phase's own (RL: pass@k); also once at the end
            if (s.data.val is not None or s.data.evaluate is not None) and fresh_here and (
                    last_step or (cfg.train.eval_every > 0 and step % cfg.train.eval_every == 0)):
                found = guarded("eval", step, lambda: evaluate(s, step))
                if found:
                    numbers = {k: v for k, v in found.items() if isinstance(v, (int, float))}
                    s.metrics.update(numbers)
                    tracker.log({"step": step, **found})
                    progress.message(f"step {step}: " + ", ".join(
                        f"{k.replace('_', ' ')} {v:.4f}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
                        for k, v in numbers.items()))

            # --- periodic samples (rank 0; also at the end)
            if rank0 and fresh_here and cfg.train.sample_every > 0 and (
                    last_step or step % cfg.train.sample_every == 0):
                samples = guarded("sample", step, lambda: sample(s.model, s.tokenizer))
                if samples:
                    tracker.log({"step": step, "samples": samples})
                    for text in samples:
                        progress.message(f"sample: {text!r}")

            # --- checkpoint: periodic, at the end, and when asked to stop (not before a fresh phase's
            # first step: a random init is nothing to resume)
            due = cfg.train.save_every > 0 and step % cfg.train.save_every == 0 and step > 0
            if (last_step or due or (stopping and step > 0)) and last_saved != step:
                t0 = time.time()
                path = save(s, step)
                last_saved = step
                progress.message(f"saved {path} ({1000 * (time.time() - t0):.0f} ms)")
            if last_step:
                break
            if stopping:
                status = INTERRUPTED
                by = {"SIGINT": "Ctrl-C", None: "a signal on another rank"}.get(s.stop.name, s.stop.name)
                where = (f"checkpoint {s.ckpt_dir / ck.step_dir_name(step)}" if last_saved == step
                         else "no checkpoint (no step was trained yet)")
                progress.message(f"{s.phase}: stopped by {by} at step {step}; {where} — "
                                 f"`nanochat resume --run {s.run_id}` continues exactly here")
                break

            # --- one optimizer step
            t_step = time.time()  # eval/save time above is not step time
            stats = step_fn(s, step)
            step += 1

            # --- logging (MFU only for plain training steps: an RL step is mostly sampling)
            dt = time.time() - t_step
            s.elapsed += dt
            tok_s = stats.tokens / dt if dt > 0 else 0.0
            mfu = (100 * s.flops_per_token * tok_s / (s.peak * s.info.world_size)
                   if s.peak and s.data.step is None else None)
            s.metrics["loss"] = stats.loss
            rec = {"step": step, "loss": stats.loss, "lrm": stats.lrm, "dt_ms": 1000 * dt, "tok_per_s": tok_s,
                   **stats.extra}
            if mfu is not None:
                rec["mfu"] = mfu
            tracker.log(rec)
            progress.update(step, stats.loss, tok_s, mfu)
    except BaseException as e:
        if rank0 and s.manifest is not None:
            # A second Ctrl-C aborts mid-step: the last saved checkpoint is intact and resumable.
            s.manifest.update_phase(s.phase, status=INTERRUPTED if isinstance(e, KeyboardInterrupt) else FAILED,
                                    step=last_saved if last_saved is not None else s.start_step)
        raise
    finally:
        progress.close()
        tracker.close()
        close = getattr(s.data.train, "close", None)
        if callable(close):
            close()

    ckpt_path = str(s.ckpt_dir / ck.step_dir_name(step)) if last_saved == step else None
    if rank0:
        s.manifest.update_phase(s.phase, status=status, step=step, checkpoint=ckpt_path, metrics=dict(s.metrics),
                                train_seconds=round(s.elapsed, 3))
    return PhaseResult(phase=s.phase, status=status, step=step, num_iterations=s.num_iterations, checkpoint=ckpt_path,
                       run_id=s.run_id, run_dir=str(s.paths.run_dir(s.run_id)), metrics=dict(s.metrics),
                       signal=s.stop.name)


def save(s: PhaseState, step: int) -> Path:
    """Checkpoint `step` (every rank calls it: each saves its optimizer state, rank 0 the rest) and record it."""
    loader_states = dist.gather_objects(s.data.train.state_dict())
    rng_states = dist.gather_objects(ck.rng_state())
    path = ck.save_checkpoint(s.ckpt_dir, step, s.raw_model.state_dict(), [o.state_dict() for o in s.optimizers],
                              checkpoint_meta(s, loader_states, rng_states), rank=s.info.rank,
                              world_size=s.info.world_size, keep_last=s.cfg.train.keep_last, barrier=dist.barrier)
    if s.info.is_rank0:
        s.manifest.update_phase(s.phase, checkpoint=str(path), step=step, metrics=dict(s.metrics))
    return path


def checkpoint_meta(s: PhaseState, loader_states: list, rng_states: list) -> dict[str, Any]:
    """meta.json minus what save_checkpoint adds (step, world size, file hashes, its own hash)."""
    from dataclasses import asdict, is_dataclass

    from nanochat_cli.config import config_to_toml_dict

    c = s.gpt_config
    return {
        "phase": s.phase, "run_id": s.run_id, "config": config_to_toml_dict(s.run_cfg),
        "model_config": asdict(c) if is_dataclass(c) else dict(vars(c)),
        "tokenizer": {"kind": getattr(s.tokenizer, "kind", s.run_cfg.tokenizer.kind), "vocab_size": s.tokenizer.vocab_size,
                      "fingerprint": getattr(s.tokenizer, "fingerprint", None)},
        "num_iterations": s.num_iterations, "metrics": s.metrics, "loader": loader_states, "rng": rng_states,
        "train_seconds": s.elapsed, "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _val_bpb(s: PhaseState):
    """The default periodic evaluation: validation bits per byte on the phase's validation stream (lazy byte
    table), as {"val_bpb": value}."""
    token_bytes = None

    def evaluate(s: PhaseState, step: int) -> dict[str, float]:
        from nanochat_cli.eval.bpb import evaluate_bpb, token_byte_lengths

        nonlocal token_bytes
        token_bytes = token_bytes if token_bytes is not None else token_byte_lengths(s.tokenizer)
        return {"val_bpb": evaluate_bpb(s.model, s.data.val(), token_bytes, s.device)}

    return evaluate


def sample(model, tokenizer, max_new_tokens: int = 16) -> list[str]:
    """Greedy continuations of a few prompts through the generation engine (KV cache; its own generator, so
    sampling never changes what training does next)."""
    from nanochat_cli.model.engine import Engine, GenerationConfig

    engine, gen = Engine(model, tokenizer), GenerationConfig(max_tokens=max_new_tokens, temperature=0.0)
    was_training = model.training
    model.eval()
    try:
        out = []
        for prompt in SAMPLE_PROMPTS:
            ids = tokenizer.encode(prompt, prepend=tokenizer.bos_id)
            new = [step[0] for step in engine.generate(ids, gen=gen)]
            out.append(tokenizer.decode(ids[1:] + new))
        return out
    finally:
        model.train(was_training)
