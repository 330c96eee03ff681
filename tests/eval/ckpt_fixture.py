"""A tiny random checkpoint written with train.checkpoint.save_checkpoint (byte tokenizer, depth 2, width
64): what chat, eval and report tests load."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

TINY_TOML = """
[model]
depth = 2
aspect_ratio = 32
head_dim = 32
seq_len = 64

[tokenizer]
kind = "byte"

[train]
device = "cpu"
dtype = "float32"
threads = 1

[eval]
core_max_per_task = 8
chat_max_problems = 4
bpb_tokens = 512

[chat]
max_tokens = 12
"""


def write_config(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_TOML)
    return p


def save_tiny_checkpoint(home: Path, phase: str = "sft", step: int = 3, seed: int = 0) -> Path:
    import torch

    from nanochat_cli.model.gpt import GPT, GPTConfig
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer
    from nanochat_cli.train.checkpoint import save_checkpoint

    tok = ByteTokenizer()
    torch.manual_seed(seed)
    gcfg = GPTConfig(vocab_size=tok.vocab_size, n_layer=2, n_embd=64, n_head=2, n_kv_head=2, seq_len=64)
    model = GPT(gcfg)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    meta = {"phase": phase, "run_id": "test-run", "model_config": asdict(gcfg),
            "tokenizer": {"kind": "byte", "vocab_size": tok.vocab_size, "fingerprint": None}, "metrics": {}}
    return save_checkpoint(home / "checkpoints" / phase / "d2", step, model.state_dict(), [], meta)
