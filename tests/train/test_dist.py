"""`--nproc N` relaunch: the torchrun command line it execs, and rank discovery from the environment."""

from __future__ import annotations

import sys

from nanochat_cli import dist


def test_torchrun_command_strips_nproc_and_keeps_everything_else():
    cmd = dist.torchrun_command(["--home", "/h", "train", "base", "--nproc", "4", "--depth", "2", "--nproc=4"], 4)
    assert cmd[:7] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m", "--"]
    assert cmd[7:] == ["nanochat_cli", "--home", "/h", "train", "base", "--depth", "2"]


def test_dist_info_reads_torchrun_variables(monkeypatch):
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert dist.dist_info() == dist.DistInfo(0, 0, 1, 1) and dist.is_rank0()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    info = dist.dist_info()
    assert (info.rank, info.local_rank, info.world_size, info.local_world_size) == (3, 1, 4, 2)
    assert info.is_distributed and not info.is_rank0


def test_single_process_collectives_are_identity():
    assert dist.any_rank(True) is True and dist.any_rank(False) is False
    assert dist.broadcast_object({"a": 1}) == {"a": 1} and dist.gather_objects(5) == [5]
