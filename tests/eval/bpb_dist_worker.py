"""Run under torchrun (2 gloo processes): evaluate_bpb where rank 1's validation batches fail half-way.
Every rank must raise the same error naming rank 1, and the next collective must pair up (no rank left
waiting in the eval's all_reduce). Writes one JSON line per rank to the folder in argv[1]."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # a script under torchrun: the repo for `tests`
from nanochat_cli.eval.bpb import evaluate_bpb  # noqa: E402
from tests.tiny import tiny_gpt  # noqa: E402

dist.init_process_group("gloo")
rank = dist.get_rank()
model = tiny_gpt(64, n_layer=1, n_head=1, seq_len=8)
token_bytes = torch.ones(64, dtype=torch.int64)


def batches(fail: bool):
    g = torch.Generator().manual_seed(rank)
    for i in range(3):
        if fail and i == 1:
            raise OSError("validation shard unreadable (injected)")
        data = torch.randint(0, 64, (2, 9), generator=g)
        yield data[:, :-1], data[:, 1:]


out = {"rank": rank}
ok = evaluate_bpb(model, batches(False), token_bytes, "cpu")  # both ranks fine: a number
out["bpb"] = ok
try:
    evaluate_bpb(model, batches(rank == 1), token_bytes, "cpu")
    out["error"] = None
except Exception as e:  # noqa: BLE001
    out["error"] = f"{type(e).__name__}: {e}"
# The training step's gradient all-reduce comes next: it must meet the other rank's, not its eval all_reduce.
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
out["next_collective"] = t.item()
(Path(sys.argv[1]) / f"rank{rank}.json").write_text(json.dumps(out))
dist.destroy_process_group()
