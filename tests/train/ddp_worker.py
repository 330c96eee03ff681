"""Run by torchrun (2 gloo processes) or plainly (1 process) from test_ddp.py: train a few steps on a fixed
global batch per step, each rank taking its slice, and write rank 0's losses and final weights' sum.

usage: ddp_worker.py HOME CONFIG_TOML OUT_JSON"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from nanochat_cli.config_sources import load_config
from nanochat_cli.tokenizer.byte_level import ByteTokenizer
from nanochat_cli.dist import dist_info
from nanochat_cli.train.loop import run_phase
from nanochat_cli.train.phase_data import PhaseData


class GlobalBatchSlices:
    """The global batch is one random (G, T+1) tensor (the same every step, so the loss must fall) for every
    world size; a rank takes its device_batch rows per micro-step, so 1 process × accum 2 and 2 processes ×
    accum 1 see the same tokens."""

    def __init__(self, B, T, accum, rank, world):
        self.B, self.T, self.accum, self.rank, self.world = B, T, accum, rank, world
        self.micro = 0

    def __iter__(self):
        return self

    def __next__(self):
        step, k = divmod(self.micro, self.accum)
        self.micro += 1
        g = torch.Generator().manual_seed(1000)
        G = self.B * self.accum * self.world
        batch = torch.randint(0, 256, (G, self.T + 1), generator=g)
        # row order: micro-step major, then rank (so 1×2 and 2×1 cover the same rows per step)
        i = (k * self.world + self.rank) * self.B
        rows = batch[i:i + self.B]
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()

    def state_dict(self):
        return {"micro": self.micro}

    def load_state_dict(self, d):
        self.micro = d["micro"]


def main(home: str, config: str, out: str) -> None:
    info = dist_info()
    cfg = load_config(config_file=Path(config), flags={"home": home}).config
    cfg.dist.nproc = info.world_size
    accum = cfg.train.total_batch_size // (cfg.train.device_batch_size * cfg.model.seq_len * info.world_size)
    data = PhaseData(train=GlobalBatchSlices(cfg.train.device_batch_size, cfg.model.seq_len, accum, info.rank,
                                             info.world_size))
    r = run_phase(cfg, "base", tokenizer=ByteTokenizer(), data=data)
    if info.rank == 0:
        runs = Path(home) / "runs" / r.run_id / "metrics.jsonl"
        losses = [json.loads(x)["loss"] for x in runs.read_text().splitlines() if '"loss"' in x]
        Path(out).write_text(json.dumps({"losses": losses, "world": info.world_size, "status": r.status}))
    import torch.distributed as tdist

    if tdist.is_initialized():
        tdist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
