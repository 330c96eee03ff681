"""Run under torchrun (2 gloo processes): three optimizer steps of a tiny GPT, each rank on its half
of the global batch; rank 0 saves the resulting weights for tests/model/test_optim.py to compare."""

import sys

import torch
import torch.distributed as dist

from nanochat_cli.config_sources import load_config
from nanochat_cli.model.optim import build_optimizers
from tests_model_common import global_batches, tiny_model  # noqa: E402  (same folder, on sys.path)

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
cfg = load_config(flags={"train.compile": sys.argv[2], "train.dtype": "float32"}).config
model = tiny_model()
optimizers = build_optimizers(model, cfg, world_size=world)
for x, y in global_batches():
    half = x.size(0) // world
    loss = model(x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half])
    loss.backward()
    for opt in optimizers:
        opt.step()
    model.zero_grad(set_to_none=True)
state = {k: v.clone() for k, v in model.state_dict().items()}
gathered = [None] * world
dist.all_gather_object(gathered, state)
if rank == 0:
    for other in gathered[1:]:  # every rank must hold identical weights after the step
        for k in state:
            assert torch.equal(state[k], other[k]), f"ranks differ in {k}"
    torch.save(state, sys.argv[1])
dist.destroy_process_group()
