"""Load a trained checkpoint for generation or evaluation: model in eval mode + the tokenizer it was trained
with (fingerprint checked). Which checkpoint: checkpoint_lookup (newest finished of the phase across runs,
or `--run`/`--step`/`--depth`); a damaged one falls back to the previous valid one, named on stderr.

A missing checkpoint is bad input (exit 2) naming the command that produces it; a tokenizer that differs
from the one the checkpoint was trained with is refused rather than producing gibberish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nanochat_cli.errors import UsageError
from nanochat_cli.paths import Paths


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    meta: dict
    step: int
    path: str
    phase: str
    run: str = ""
    description: str = ""  # "sft model: run R, step N (finished)" — what commands print about their choice


def _model_config_problem(meta: dict) -> str | None:
    """Why meta.json's model_config cannot build our GPT (unknown or missing keys, absurd sizes)."""
    from dataclasses import fields

    from nanochat_cli.model.gpt import GPTConfig

    mc = meta.get("model_config")
    if not isinstance(mc, dict) or not mc:
        return None  # very old checkpoints: the config decides (checked when the weights load)
    known = {f.name for f in fields(GPTConfig)}
    unknown = sorted(set(mc) - known)
    if unknown:
        return f"meta.json model_config has keys this version does not know: {', '.join(unknown)}"
    try:
        GPTConfig(**mc)
    except (TypeError, ValueError) as e:
        return f"meta.json model_config is not buildable ({e})"
    return None


def load_for_inference(cfg, phase: str, step: int | None = None, device: str | None = None,
                       run: str | None = None, depth: int | None = None, quiet: bool = False) -> LoadedModel:
    import torch

    from nanochat_cli.checkpoint_lookup import load_phase_checkpoint
    from nanochat_cli.model.gpt import GPT, GPTConfig
    from nanochat_cli.tokenizer import load_recorded_tokenizer

    found, loaded = load_phase_checkpoint(Paths.of(cfg), phase, run=run, step=step, depth=depth,
                                          load_optimizer=False, accept=_model_config_problem, quiet=quiet)
    meta = loaded.meta
    tokenizer = load_recorded_tokenizer(cfg, meta.get("tokenizer") or {"kind": cfg.tokenizer.kind}, str(loaded.path))
    mc = meta.get("model_config") or {}
    gpt_config = GPTConfig(**mc) if mc else GPTConfig.from_config(cfg, tokenizer.vocab_size)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = GPT(gpt_config)
    try:
        model.load_state_dict({k: v.to(device) for k, v in loaded.model_state.items()}, strict=True)
    except RuntimeError as e:
        raise UsageError(f"the weights in {loaded.path} do not fit the model described by its meta.json ({e})".split("\n")[0]) from None
    model.eval()
    return LoadedModel(model, tokenizer, meta, loaded.step, str(loaded.path), phase, found.run, found.describe(loaded))
