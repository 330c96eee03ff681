"""What makes base, mid, SFT and RL different: only their data, their training settings, the checkpoint they
start from, and the tokenizer (RL also brings its own step and evaluation, train/rl.py). The loop (loop.py) is
the same for all; `BUILDERS` maps each phase to the function that returns its `PhaseData`, and `phase_view`
gives the loop the phase's settings.

Base reads the parquet shards (`data.shards.list_shards`) through `data.loader.TokenLoader`; mid and SFT read
task mixtures (chat_phases.py). A builder runs before any model is built, so a missing prerequisite fails
in seconds (PreflightError naming the fix command). `phase_view(cfg, phase)` returns a copy of the config
whose [train] section holds the phase's batch sizes, learning rates (× init_lr_frac) and schedule, so the
loop needs no phase branches; the run keeps the original config (the view is never saved), so applying it
again on resume gives the same values. SFT's schedule is nanochat's: no warm-up, linear decay from 0.02× to 0
over all steps; RL's the same from 0.05×; mid's is constant then the last 20% down to 0.
"""

from __future__ import annotations

from typing import Callable

from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.train.chat_phases import mid_data, sft_data
from nanochat_cli.train.phase_data import INIT_FROM, INIT_NEEDED, PhaseData
from nanochat_cli.train.rl import rl_data


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
    if phase in INIT_NEEDED:
        data = BUILDERS[phase](cfg, tokenizer, rank, world_size, init_problem=init_problem)
    else:
        data = BUILDERS[phase](cfg, tokenizer, rank, world_size)
    if data.init_from is None:
        data.init_from = INIT_FROM[phase]
    return data


def phase_view(cfg, phase: str):
    """`cfg` as the loop should see it for `phase` (base: unchanged)."""
    if phase not in INIT_NEEDED:  # base: unchanged
        return cfg
    from nanochat_cli.config import Config

    from pydantic import ValidationError

    section, t, T = getattr(cfg, phase), cfg.train, cfg.model.seq_len
    lr = {k: getattr(t, k) * section.init_lr_frac for k in ("embedding_lr", "unembedding_lr", "matrix_lr")}
    if phase == "mid":
        over = dict(device_batch_size=section.device_batch_size or t.device_batch_size,
                    total_batch_size=section.total_batch_size or t.total_batch_size, warmup_ratio=0.0,
                    warmdown_ratio=section.warmdown_ratio, final_lr_frac=section.final_lr_frac)
    elif phase == "rl":  # its own step (train/rl.py) samples; the batch fields only keep the config valid
        over = dict(warmup_ratio=0.0, warmdown_ratio=1.0, final_lr_frac=0.0, save_every=section.save_every,
                    sample_every=0)
    else:
        over = dict(device_batch_size=section.device_batch_size, total_batch_size=section.examples_per_step * T,
                    warmup_ratio=0.0, warmdown_ratio=1.0, final_lr_frac=0.0)
    over.update(lr, eval_every=section.eval_every, num_iterations=section.num_iterations)
    data = cfg.model_dump()
    data["train"].update(over)
    try:  # the config model checks the batch divisibility, also for a world torchrun chose
        return Config(**data)
    except ValidationError as e:
        raise UsageError(e.errors()[0]["msg"].removeprefix("Value error, "),
                         f"change {phase}'s batch settings (`nanochat config show` checks them)") from None


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


BUILDERS: dict[str, Callable[..., PhaseData]] = {"base": base_data, "mid": mid_data, "sft": sft_data, "rl": rl_data}
