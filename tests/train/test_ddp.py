"""Data parallel: 2 torchrun (gloo) processes with accumulation 1 train like 1 process with accumulation 2
on the same global batches (same losses up to float summation order)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, cli_env, in_netns
from tests.train.conftest import tiny_config_file

WORKER = str(ROOT / "tests" / "train" / "ddp_worker.py")


def _env(home):
    env = cli_env({"NANOCHAT_HOME": str(home)})
    env["PYTHONPATH"] = str(ROOT) + ":" + env["PYTHONPATH"]  # the worker imports tests.train
    return env


@pytest.mark.slow
@pytest.mark.dist
def test_two_process_gloo_matches_single_process(tmp_path):
    cfg = tiny_config_file(tmp_path, iters=6, eval_every=0, save_every=3)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    r1 = subprocess.run([sys.executable, WORKER, str(one), str(cfg), str(tmp_path / "one.json")],
                        capture_output=True, text=True, env=_env(one), timeout=300)
    assert r1.returncode == 0, r1.stderr
    cmd = in_netns([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", WORKER,
                    str(two), str(cfg), str(tmp_path / "two.json")])
    r2 = subprocess.run(cmd, capture_output=True, text=True, env=_env(two), timeout=300)
    assert r2.returncode == 0, r2.stderr[-3000:]
    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "two.json").read_text())
    assert a["world"] == 1 and b["world"] == 2 and len(a["losses"]) == len(b["losses"]) == 6
    assert b["losses"] == pytest.approx(a["losses"], rel=1e-4, abs=1e-5)
    # Training moved the loss (so the comparison is not between two untrained models).
    assert a["losses"][-1] < a["losses"][0]
    # The 2-process checkpoint holds one optimizer file per rank.
    [ck] = list(two.glob("runs/*/checkpoints/base/step_000006"))
    assert sorted(p.name for p in ck.iterdir()) == ["meta.json", "model.safetensors", "optim_rank0.pt",
                                                     "optim_rank1.pt"]


@pytest.mark.slow
@pytest.mark.dist
def test_nproc_flag_relaunches_under_torchrun(home, tmp_path, run_cli):
    from tests.train.conftest import write_shards

    write_shards(home)
    cfg = tiny_config_file(tmp_path, iters=4, eval_every=2, save_every=2)
    # --run: torchrun's argparse once took it for an abbreviation of its own --run-path
    r = run_cli("train", "base", "--nproc", "2", "--run", "ddp-run", "--config", str(cfg), "--json", netns=True)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)  # exactly one JSON document: only rank 0 prints
    assert result["status"] == "done" and result["step"] == 4
    assert (home / "runs" / "ddp-run" / "manifest.json").is_file()
    ck = home / "runs" / "ddp-run" / "checkpoints" / "base" / "step_000004"
    assert {"optim_rank0.pt", "optim_rank1.pt"} <= {p.name for p in ck.iterdir()}
    meta = json.loads((ck / "meta.json").read_text())
    assert meta["world_size"] == 2 and len(meta["loader"]) == 2 and len(meta["rng"]) == 2
