"""Load a trained checkpoint for generation or evaluation: model in eval mode + the tokenizer it was
trained with (fingerprint checked), from `<home>/checkpoints/<phase>/d<depth>/`.

A missing checkpoint is bad input (exit 2) naming the command that produces it; a tokenizer that differs
from the one the checkpoint was trained with is refused rather than producing gibberish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nanochat_cli.errors import UsageError
from nanochat_cli.paths import Paths

PRODUCER = {"base": "nanochat train base", "mid": "nanochat train mid", "sft": "nanochat train sft"}


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    meta: dict
    step: int
    path: str
    phase: str


def load_for_inference(cfg, phase: str, step: int | None = None, device: str | None = None) -> LoadedModel:
    import torch

    from nanochat_cli.model.gpt import GPT, GPTConfig
    from nanochat_cli.train import checkpoint as ck

    if phase not in PRODUCER:
        raise UsageError(f"unknown model source {phase!r}", "use -i base, mid or sft")
    directory = Paths.of(cfg).checkpoint_dir(phase, cfg.model.depth)
    if ck.latest_valid_step(directory, quiet=True) is None:
        raise UsageError(f"no {phase} checkpoint for depth {cfg.model.depth} under {directory}",
                         f"run `{PRODUCER[phase]}` (or `nanochat speedrun`) first, or pass --depth/--profile "
                         "of the model you trained")
    loaded = ck.load_checkpoint(directory, step, device="cpu", load_optimizer=False)
    meta = loaded.meta
    tok_meta = meta.get("tokenizer", {})
    if tok_meta.get("kind") == "byte":
        from nanochat_cli.tokenizer.byte_level import ByteTokenizer

        tokenizer = ByteTokenizer()
    else:
        from nanochat_cli.tokenizer import load_tokenizer

        tok_cfg = cfg.model_copy(deep=True)
        tok_cfg.tokenizer.vocab_size = tok_meta.get("vocab_size", cfg.tokenizer.vocab_size)
        tokenizer = load_tokenizer(tok_cfg)
        fp = tok_meta.get("fingerprint")
        if fp and getattr(tokenizer, "fingerprint", None) != fp:
            raise UsageError(f"the tokenizer in {Paths.of(cfg).tokenizer} is not the one {loaded.path} was trained "
                             "with", "restore that tokenizer (its sha256 is in the checkpoint's meta.json)")
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
    return LoadedModel(model, tokenizer, meta, loaded.step, str(loaded.path), phase)
