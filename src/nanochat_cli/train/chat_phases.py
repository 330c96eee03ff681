"""Mid and SFT plugged into the one training loop: their training settings (`phase_view`) and their data
(`mid_data`/`sft_data`, registered with `phases.register`).

`phase_view(cfg, phase)` returns a copy of the config whose [train] section holds the phase's batch
sizes, learning rates (× init_lr_frac) and schedule, so the loop needs no phase branches; the run keeps
the original config (the view is never saved), so applying it again on resume gives the same values.
SFT's schedule is nanochat's: no warm-up, linear decay from 0.02× to 0 over all steps; mid's is
constant then the last 20% down to 0. Mid's default length, one pass over the mixture, is estimated
from 1,000 rendered conversations (a second or two) because packing makes the exact count a full
tokenization pass (minutes for nanochat's 848K conversations).
"""

from __future__ import annotations

import math

from nanochat_cli.errors import UsageError
from nanochat_cli.train.phases import PhaseData, register

CHAT_PHASES = ("mid", "sft")


def phase_view(cfg, phase: str):
    """`cfg` as the loop should see it for `phase` (base: unchanged)."""
    if phase not in CHAT_PHASES:
        return cfg
    from nanochat_cli.config import Config

    section, t, T, world = getattr(cfg, phase), cfg.train, cfg.model.seq_len, cfg.world_size
    lr = {k: getattr(t, k) * section.init_lr_frac for k in ("embedding_lr", "unembedding_lr", "matrix_lr")}
    if phase == "mid":
        B = section.device_batch_size or t.device_batch_size
        total = section.total_batch_size or t.total_batch_size
        if total % (B * T * world):
            raise UsageError(f"mid batch: {total} tokens per step is not a multiple of device_batch_size × seq_len × "
                             f"world = {B} × {T} × {world}", "set mid.total_batch_size or mid.device_batch_size")
        over = dict(device_batch_size=B, total_batch_size=total, warmup_ratio=0.0,
                    warmdown_ratio=section.warmdown_ratio, final_lr_frac=section.final_lr_frac)
    else:
        B = section.device_batch_size
        if section.examples_per_step % (B * world):
            raise UsageError(f"sft.examples_per_step {section.examples_per_step} is not a multiple of "
                             f"sft.device_batch_size × world = {B} × {world}",
                             "set sft.examples_per_step to a multiple of it")
        over = dict(device_batch_size=B, total_batch_size=section.examples_per_step * T, warmup_ratio=0.0,
                    warmdown_ratio=1.0, final_lr_frac=0.0)
    over.update(lr, eval_every=section.eval_every, num_iterations=section.num_iterations)
    data = cfg.model_dump()
    data["train"].update(over)
    return Config(**data)


def _val_factory(task, make_loader, steps: int):
    def val():
        loader = make_loader(task)
        return (batch for _, batch in zip(range(steps), loader))

    return val


@register("mid")
def mid_data(cfg, tokenizer, rank: int = 0, world_size: int = 1, init_problem: str | None = None) -> PhaseData:
    from nanochat_cli.train.chat_loader import PackedChatLoader, estimate_tokens_per_conversation
    from nanochat_cli.train.preflight import preflight_phase

    train, val = preflight_phase(cfg, "mid", init_problem)
    B, T = cfg.train.device_batch_size, cfg.model.seq_len
    num_iterations = cfg.mid.num_iterations
    if num_iterations < 0:
        per_step = (B * T + 1) * (cfg.train.total_batch_size // (B * T))  # every rank eats this much
        tokens = estimate_tokens_per_conversation(train, tokenizer) * len(train)
        num_iterations = max(1, math.ceil(tokens / per_step / world_size))
    val_steps = max(1, cfg.mid.eval_tokens // (B * T * world_size))

    def make(task):
        return PackedChatLoader(task, tokenizer, B, T, rank, world_size)

    return PhaseData(train=make(train), val=_val_factory(val, make, val_steps), val_steps=val_steps,
                     init_from="base", num_iterations=num_iterations, summary=_summary(train, val))


@register("sft")
def sft_data(cfg, tokenizer, rank: int = 0, world_size: int = 1, init_problem: str | None = None) -> PhaseData:
    from nanochat_cli.train.chat_loader import PaddedChatLoader
    from nanochat_cli.train.preflight import preflight_phase

    train, val = preflight_phase(cfg, "sft", init_problem)
    B, T = cfg.train.device_batch_size, cfg.model.seq_len
    num_iterations = cfg.sft.num_iterations
    if num_iterations < 0:
        num_iterations = max(1, cfg.sft.epochs * len(train) // cfg.sft.examples_per_step)

    def make(task):
        return PaddedChatLoader(task, tokenizer, B, T, rank, world_size)

    return PhaseData(train=make(train), val=_val_factory(val, make, cfg.sft.eval_steps),
                     val_steps=cfg.sft.eval_steps, init_from="mid", num_iterations=num_iterations,
                     summary=_summary(train, val))


def _summary(train, val) -> str:
    rows = ", ".join(f"{k} {v:,}" for k, v in train.counts().items())
    return f"{len(train):,} train conversations ({rows}); {len(val):,} val"
