"""Load a trained phase's checkpoint for inference: model (eval mode), tokenizer, metadata.

Shared by `chat`, `eval` and `report`. The model is rebuilt from the GPTConfig stored in the checkpoint's
meta.json, not from the current config, so a chat with `--depth 4` never loads weights into the wrong
shape. Weights load on CPU then move (one extra copy, ~0.1 s for the cpu-tiny model); compute dtype
follows train.dtype (auto: bf16 on CUDA). A missing checkpoint is a UsageError (exit 2) naming the
`nanochat train <phase>` command that makes it. It does not load optimizer state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanochat_cli.errors import UsageError
from nanochat_cli.paths import PHASES, Paths


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    meta: dict
    path: Path
    step: int
    phase: str


def checkpoint_dir_or_fail(cfg, phase: str) -> Path:
    """The phase's d{depth} folder if it holds a complete checkpoint, else a UsageError naming the fix."""
    from nanochat_cli.train.checkpoint import latest_valid_step

    if phase not in PHASES:
        raise UsageError(f"unknown model source {phase!r}", f"use one of: {', '.join(PHASES)}")
    paths = Paths.of(cfg)
    directory = paths.checkpoint_dir(phase, cfg.model.depth)
    if directory.is_dir() and latest_valid_step(directory, quiet=True) is not None:
        return directory
    others = sorted(p.name for p in (paths.checkpoints / phase).glob("d*") if p.is_dir()) \
        if (paths.checkpoints / phase).is_dir() else []
    hint = f" (found {', '.join(others)}: pass --depth)" if others else ""
    raise UsageError(f"no {phase} checkpoint for depth {cfg.model.depth} in {directory}{hint}",
                     f"train it first: `nanochat train {phase}`")


def load_tokenizer_for(cfg, meta: dict):
    kind = (meta.get("tokenizer") or {}).get("kind") or cfg.tokenizer.kind
    if kind == "byte":
        from nanochat_cli.tokenizer.byte_level import ByteTokenizer

        return ByteTokenizer()
    from nanochat_cli.tokenizer import load_tokenizer

    tok = load_tokenizer(cfg)
    want = (meta.get("tokenizer") or {}).get("fingerprint")
    have = getattr(tok, "fingerprint", None)
    if want and have and want != have:
        raise UsageError("the tokenizer on disk is not the one this checkpoint was trained with",
                         "restore the run's tokenizer (its sha256 is in the checkpoint's meta.json)")
    return tok


def load_for_inference(cfg, phase: str, step: int | None = None, device=None) -> Loaded:
    import torch

    from nanochat_cli.model.gpt import GPT, GPTConfig
    from nanochat_cli.model.precision import resolve_device, resolve_dtype
    from nanochat_cli.train.checkpoint import load_checkpoint

    directory = checkpoint_dir_or_fail(cfg, phase)
    ck = load_checkpoint(directory, step, device="cpu", load_optimizer=False)
    tokenizer = load_tokenizer_for(cfg, ck.meta)
    mc = ck.meta.get("model_config")
    if not mc:
        raise UsageError(f"{ck.path} has no model_config in meta.json", f"retrain with `nanochat train {phase}`")
    gcfg = GPTConfig(**mc)
    device = torch.device(device) if device is not None else resolve_device(cfg)
    model = GPT(gcfg)
    try:
        model.load_state_dict(ck.model_state, strict=True)
    except RuntimeError as e:
        raise UsageError(f"the weights in {ck.path} do not fit their own model_config ({str(e).splitlines()[0]})",
                         f"retrain with `nanochat train {phase}`") from None
    model.to(device)
    if device.type == "cuda":
        model.compute_dtype = resolve_dtype(cfg, device)[0]
    model.eval()
    return Loaded(model=model, tokenizer=tokenizer, meta=ck.meta, path=ck.path, step=ck.step, phase=phase)
