"""The tiny model and batches shared by test_optim.py and its torchrun worker (so both build the same)."""

import torch

from nanochat_cli.model.gpt import GPT
from tests.tiny import tiny_gpt


def tiny_model() -> GPT:
    # 3 layers: 3 matrices per MLP shape, which 2 ranks cannot split evenly (exercises the padding).
    return tiny_gpt(100, n_layer=3, n_kv_head=2, seq_len=16)


def global_batches(steps: int = 3, batch: int = 4):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        data = torch.randint(0, 100, (batch, 17), generator=g)
        yield data[:, :-1], data[:, 1:]
