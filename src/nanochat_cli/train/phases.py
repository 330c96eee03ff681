"""What makes base, mid and SFT different: only their data, the checkpoint they start from, and the
tokenizer check. The loop (loop.py) is the same for all three; a phase plugs in by registering a
builder here that returns a `PhaseData`.

Base reads the parquet shards (`data.shards.list_shards`) through `data.loader.TokenLoader`; mid and
SFT builders are registered by the tasks package (helper `tasks`, issue 6). A builder runs before any
model is built, so a missing prerequisite fails in seconds (PreflightError naming the fix command).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from nanochat_cli.errors import PreflightError, UsageError

# phase -> phase whose checkpoint initialises its weights (None = random init)
INIT_FROM = {"base": None, "mid": "base", "sft": "mid"}
INIT_NEEDED = tuple(p for p, pre in INIT_FROM.items() if pre is not None)


@dataclass
class PhaseData:
    """A phase's data. `train` yields (inputs, targets) int64 (B, T) batches forever and has
    `state_dict()`/`load_state_dict()` so a resume continues the same stream; `val` makes a fresh
    iterable of validation batches each time it is called (None = no periodic val bpb)."""

    train: Any
    val: Callable[[], Iterable] | None = None
    val_steps: int = 0
    init_from: str | None = None
    num_iterations: int | None = None  # set by phases whose length follows from their data (mid/SFT epochs)
    summary: str = ""  # one line about the data, shown when training starts


Builder = Callable[..., PhaseData]
BUILDERS: dict[str, Builder] = {}


def register(phase: str):
    """Decorator: `@register("mid") def mid_data(cfg, tokenizer, rank, world_size) -> PhaseData`."""

    def deco(fn: Builder) -> Builder:
        BUILDERS[phase] = fn
        return fn

    return deco


def load_phase_tokenizer(cfg, recorded: dict | None = None, where: str | None = None):
    """The tokenizer a phase trains with: the one its starting checkpoint (resume or init) was trained with
    (`recorded`: that meta.json's "tokenizer"), else the default trained BPE (PreflightError naming
    `nanochat tokenizer train` when missing; the 256-byte one when `tokenizer.kind = "byte"`)."""
    from nanochat_cli.tokenizer import load_recorded_tokenizer

    return load_recorded_tokenizer(cfg, recorded, where)


def build_phase_data(cfg, phase: str, tokenizer, rank: int = 0, world_size: int = 1,
                     init_problem: str | None = None) -> PhaseData:
    """The phase's data; `init_problem` (why there is no checkpoint to start from) is reported by mid/SFT
    together with every other preflight problem."""
    if phase not in BUILDERS:
        _import_plugins()
    if phase not in BUILDERS:
        raise PreflightError(f"no data source for phase {phase!r} in this build",
                             "phases mid and sft need the tasks package (issue 6)")
    builder = BUILDERS[phase]
    data = builder(cfg, tokenizer, rank, world_size, init_problem=init_problem) if phase in INIT_NEEDED \
        else builder(cfg, tokenizer, rank, world_size)
    if data.init_from is None:
        data.init_from = INIT_FROM.get(phase)
    return data


def _import_plugins() -> None:
    # chat_phases registers the mid/SFT builders on import (kept apart: it pulls in the tasks package).
    import nanochat_cli.train.chat_phases  # noqa: F401


@register("base")
def base_data(cfg, tokenizer, rank: int = 0, world_size: int = 1) -> PhaseData:
    from nanochat_cli.data.loader import TokenLoader
    from nanochat_cli.data.shards import list_shards

    train_files, val_file = list_shards(cfg)
    if not train_files:
        raise PreflightError("no training shards (only the validation shard is present)",
                             "fetch more shards: `nanochat data fetch base`")
    B, T = cfg.train.device_batch_size, cfg.model.seq_len
    per_step = B * T * world_size
    val_steps = max(1, cfg.train.eval_tokens // per_step)
    if cfg.train.eval_tokens < per_step:
        raise UsageError(f"train.eval_tokens {cfg.train.eval_tokens} is less than one batch ({per_step} tokens)",
                         f"set train.eval_tokens to at least {per_step}")
    train = TokenLoader(train_files, tokenizer, B, T, rank=rank, world_size=world_size)

    def val():  # the same validation stream `nanochat eval bpb` reads, cut to train.eval_tokens
        from nanochat_cli.eval.bpb import validation_batches

        return validation_batches(cfg, tokenizer, rank, world_size, tokens=cfg.train.eval_tokens)

    return PhaseData(train=train, val=val, val_steps=val_steps)
