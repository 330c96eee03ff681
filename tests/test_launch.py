"""launch.py: the launching process picks the workers' own exit code and prints one error line; a GPU profile
is refused before torch is imported. (The real 2-process launches are in tests/train/test_ddp.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from nanochat_cli import dist
from nanochat_cli.launch import WorkerFailed, outcome, read_exit_records, record_crash, write_exit_record
from tests.conftest import cli_env


def rec(rank, code, line=None, t=0.0, first=True):
    return {"rank": rank, "code": code, "line": line, "time": t, "first_failure": first}


def test_the_first_error_line_by_time_wins_with_its_own_code():
    records = {0: rec(0, 1, "rank 0 crashed: RuntimeError: Connection closed by peer", t=2.0, first=False),
               1: rec(1, 3, "base data: 0 shard(s)", t=1.0)}
    with pytest.raises(WorkerFailed) as e:
        outcome(records, {}, None)
    assert e.value.exit_code == 3 and e.value.one_line() == "base data: 0 shard(s)"
    # a consequence that happened to be written first still loses to the root cause
    records[0]["time"] = 0.5
    with pytest.raises(WorkerFailed) as e:
        outcome(records, {}, None)
    assert e.value.exit_code == 3


def test_codes_without_lines_are_returned_quietly():
    assert outcome({0: rec(0, 0), 1: rec(1, 0)}, {}, None) == 0
    assert outcome({0: rec(0, 75), 1: rec(1, 75)}, {}, "SIGTERM") == 75
    assert outcome({0: rec(0, 130), 1: rec(1, 130)}, {}, "SIGINT") == 130
    assert outcome({}, {}, "SIGINT") == 130 and outcome({}, {}, "SIGUSR2") == 75  # workers killed before a record


def test_a_worker_without_a_record_is_named():
    with pytest.raises(WorkerFailed) as e:
        outcome({}, {1: SimpleNamespace(exitcode=-9, timestamp=5)}, None)
    assert e.value.exit_code == 1 and "rank 1 was killed by SIGKILL (out of memory?" in e.value.one_line()
    with pytest.raises(WorkerFailed) as e:
        outcome({0: rec(0, 0)}, {1: SimpleNamespace(exitcode=1, timestamp=5)}, None)
    assert e.value.one_line() == "rank 1 failed with exit code 1 (its output is above)"


def test_workers_write_records_only_under_a_launcher(tmp_path, monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "TORCHELASTIC_RUN_ID", dist.LAUNCH_DIR_ENV):
        monkeypatch.delenv(k, raising=False)
    assert write_exit_record(3, "x") is False  # a plain process prints its own line
    monkeypatch.setenv(dist.LAUNCH_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert write_exit_record(2, "bad input") is True
    monkeypatch.setenv("RANK", "0")
    try:
        raise RuntimeError("Connection closed by peer")
    except RuntimeError as e:
        assert record_crash(e) is True  # rank 1 failed first: stay quiet
    records = read_exit_records(tmp_path)
    assert records[1]["code"] == 2 and records[1]["first_failure"] is True
    assert records[0]["code"] == 1 and records[0]["first_failure"] is False and "Traceback" in records[0]["detail"]
    assert records[0]["line"] == "rank 0 crashed: RuntimeError: Connection closed by peer"


def test_a_gpu_profile_without_gpus_is_one_line_and_never_imports_torch(home):
    """The refusal happens before torch is imported (2–8 s on a busy machine): it takes about a second."""
    code = ("import sys\nfrom nanochat_cli.cli import main\n"
            "try:\n    main(['train', 'base', '--profile', 'a100x8'])\n"
            "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=cli_env({"NANOCHAT_HOME": str(home)}))
    if not list(__import__("pathlib").Path("/dev").glob("nvidia[0-9]*")):
        assert r.stdout.split() == ["3", "False"], r.stdout + r.stderr
        [line] = r.stderr.splitlines()
        assert line.startswith("Error: gpus: the a100x8 profile trains on 8 CUDA GPUs per node")
        assert "this machine has 0" in line and "--profile cpu-small" in line and "nanochat slurm render" in line


def test_launch_leaves_no_agent_signal_handler_behind(monkeypatch, tmp_path):
    """torchrun's agent replaces the SIGINT/SIGTERM handlers and never puts them back: after a launch, a Ctrl-C
    between two of the speedrun's stages must still be a KeyboardInterrupt."""
    import signal

    import torch.distributed.run as torchrun

    def agent(args):  # what the real agent does to the handlers, without starting workers
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
            signal.signal(s, lambda *a: None)

    monkeypatch.setattr(torchrun, "run", agent)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)]
    from nanochat_cli.launch import launch

    assert launch(["config", "show"], 2) == 0
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)] == before
    assert list(tmp_path.iterdir()) == []  # the exit-record directory is gone
