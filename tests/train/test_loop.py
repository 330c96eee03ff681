"""The loop in-process: it learns, an eval failure never stops it, iterations derive from the ratio."""

from __future__ import annotations

import json

import torch

from nanochat_cli.tokenizer.byte_level import ByteTokenizer
from nanochat_cli.track import read_metrics
from nanochat_cli import checkpoint as ck
from nanochat_cli.train.loop import run_phase
from nanochat_cli.train.schedule import num_iterations
from nanochat_cli.runs import Manifest
from nanochat_cli.train.phase_data import PhaseData
from tests.train.conftest import tiny_config


class SameBatch:
    """One fixed batch forever (an overfit test), with the loader's state interface."""

    def __init__(self, B=2, T=32, vocab=256):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, vocab, (B, T + 1), generator=g)
        self.n = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.n += 1
        return self.x[:, :-1].contiguous(), self.x[:, 1:].contiguous()

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, d):
        self.n = d["n"]


def test_loss_decreases_on_a_tiny_overfit_batch(home, tmp_path):
    cfg = tiny_config(home, tmp_path, iters=40, eval_every=0, save_every=0)
    r = run_phase(cfg, "base", tokenizer=ByteTokenizer(), data=PhaseData(train=SameBatch()))
    recs = [x for x in read_metrics(home / "runs" / r.run_id / "metrics.jsonl") if "loss" in x]
    assert len(recs) == 40 and r.status == "done"
    first, last = recs[0]["loss"], recs[-1]["loss"]
    assert first > 4.5  # ≈ ln(265) at init
    assert last < 0.5 * first, (first, last)


def test_eval_exception_is_logged_and_training_finishes(home, tmp_path, capsys):
    def broken_val():
        raise RuntimeError("validation shard exploded")

    cfg = tiny_config(home, tmp_path, iters=12, eval_every=4, save_every=6)
    r = run_phase(cfg, "base", tokenizer=ByteTokenizer(), data=PhaseData(train=SameBatch(), val=broken_val))
    assert r.status == "done" and r.step == 12
    err = capsys.readouterr().err
    assert "eval failed at step 4" in err and "training continues" in err
    recs = read_metrics(home / "runs" / r.run_id / "metrics.jsonl")
    assert [x["step"] for x in recs if "eval_error" in x] == [0, 4, 8, 12]
    assert sum("loss" in x for x in recs) == 12
    ckdir = home / "runs" / r.run_id / "checkpoints" / "base"
    assert ck.list_steps(ckdir) == [6, 12] and ck.latest_valid_step(ckdir) == 12
    m = Manifest.load(home / "runs" / r.run_id)
    assert m.phases["base"]["status"] == "done" and m.phases["base"]["step"] == 12


def test_real_base_data_val_bpb_and_checkpoint_meta(data_home, tmp_path):
    cfg = tiny_config(data_home, tmp_path, iters=6, eval_every=3, save_every=3)
    r = run_phase(cfg, "base", tokenizer=ByteTokenizer())
    recs = read_metrics(data_home / "runs" / r.run_id / "metrics.jsonl")
    bpbs = [x["val_bpb"] for x in recs if "val_bpb" in x]
    assert len(bpbs) == 3 and all(0 < b < 12 for b in bpbs)
    meta = json.loads((data_home / "runs" / r.run_id / "checkpoints/base/step_000006/meta.json").read_text())
    assert meta["step"] == 6 and meta["phase"] == "base" and meta["run_id"] == r.run_id
    assert meta["tokenizer"]["kind"] == "byte" and meta["config"]["model"]["depth"] == 2
    assert len(meta["loader"]) == 1 and len(meta["rng"]) == 1 and set(meta["rng"][0]) >= {"python", "numpy", "torch"}
    assert meta["metrics"]["val_bpb"] == bpbs[-1]
    assert set(meta["files"]) == {"model.safetensors", "optim_rank0.pt"}


def test_num_iterations_from_param_data_ratio(home, tmp_path):
    cfg = tiny_config(home, tmp_path)
    cfg.train.num_iterations = -1
    cfg.train.target_param_data_ratio = 20
    assert num_iterations(cfg, 1_000_000) == 20 * 1_000_000 // cfg.train.total_batch_size
    cfg.train.num_iterations = 7
    assert num_iterations(cfg, 1_000_000) == 7


class SignalAt(SameBatch):
    """A different batch every micro-step (so the data position matters) that sends this process a real
    SIGUSR2 when micro-batch `at` is fetched: the loop must finish that step, save and stop."""

    def __init__(self, at=None):
        super().__init__()
        self.at = at

    def __next__(self):
        import os
        import signal

        self.n += 1
        if self.n == self.at:
            os.kill(os.getpid(), signal.SIGUSR2)
        g = torch.Generator().manual_seed(self.n)
        x = torch.randint(0, 256, (2, 33), generator=g)
        return x[:, :-1].contiguous(), x[:, 1:].contiguous()


def test_sigusr2_in_process_then_resume_repeats_the_losses_bitwise(home, tmp_path):
    ref_home = tmp_path / "ref"
    ref = run_phase(tiny_config(ref_home, tmp_path, iters=12, eval_every=0, save_every=0), "base",
                    tokenizer=ByteTokenizer(), data=PhaseData(train=SignalAt()))
    want = [x["loss"] for x in read_metrics(ref_home / "runs" / ref.run_id / "metrics.jsonl") if "loss" in x]

    cfg = tiny_config(home, tmp_path, iters=12, eval_every=0, save_every=0)
    first = run_phase(cfg, "base", tokenizer=ByteTokenizer(), data=PhaseData(train=SignalAt(at=9)))
    assert first.status == "interrupted" and first.step == 5  # micro-batch 9 is in step 5 (2 per step)
    assert ck.latest_valid_step(home / "runs" / first.run_id / "checkpoints" / "base") == 5
    assert Manifest.load(home / "runs" / first.run_id).phases["base"]["status"] == "interrupted"
    second = run_phase(cfg, "base", resume=True, run_id=first.run_id, tokenizer=ByteTokenizer(),
                       data=PhaseData(train=SignalAt()))
    assert second.status == "done" and second.run_id == first.run_id
    got = [x["loss"] for x in read_metrics(home / "runs" / first.run_id / "metrics.jsonl") if "loss" in x]
    assert got == want  # bitwise
