"""Mid and SFT data for the one training loop (`mid_data`/`sft_data`, mapped in phases.BUILDERS): packed or
padded conversations of their task mixtures, checked by the preflight first. Mid's default length, one pass
over the mixture, is estimated
from 1,000 rendered conversations (a second or two) because packing makes the exact count a full
tokenization pass (minutes for nanochat's 848K conversations).
"""

from __future__ import annotations

import math

from nanochat_cli.train.phase_data import PhaseData

def _val_factory(task, make_loader, steps: int):
    def val():
        loader = make_loader(task)
        return (batch for _, batch in zip(range(steps), loader))

    return val


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
