"""`nanochat doctor --canary`: real steps through the training step, on 1 process in-process and on 2 gloo
processes through the CLI; the checks it reports, and exit 3 with one line when one fails."""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import tiny_config, tiny_config_file, write_shards


def test_canary_in_one_process_reports_every_check(home, tmp_path, seeded):
    from nanochat_cli.train.canary import run_canary

    write_shards(home)
    res = run_canary(tiny_config(home, tmp_path))
    assert res["ok"] is True and res["ranks_agree"] is True and res["resume_equal"] is True
    assert res["loss_last"] < res["loss_first"] and len(res["losses"]) == 20
    assert res["resumed_losses"] == res["losses"][10:12]  # bit for bit on CPU
    assert res["mfu"] is None and res["tok_per_s"] > 0 and res["world_size"] == 1
    assert res["tokenizer"] == "byte" and res["depth"] == 2 and res["batch"] == [2, 32]
    assert not (home / ".canary").exists()  # the scratch checkpoint is gone


@pytest.mark.dist
def test_canary_on_two_gloo_processes_through_the_cli(run_cli, home, tmp_path):
    write_shards(home)
    cfg = tiny_config_file(tmp_path)
    r = run_cli("doctor", "--canary", "--nproc", "2", "--config", str(cfg), "--json", netns=True)
    assert r.returncode == 0, r.stderr[-3000:]
    [line] = r.stdout.splitlines()  # one document, on one line (logs), from rank 0 only
    res = json.loads(line)
    assert res["ok"] is True and res["world_size"] == 2 and res["backend"] == "gloo"
    assert res["ranks_agree"] is True and res["resume_equal"] is True and res["loss_last"] < res["loss_first"]
    assert res["tokens_per_step"] == 2 * 2 * 32
    r = run_cli("doctor", "--canary", "--config", str(cfg))  # the table for people, one process
    assert r.returncode == 0, r.stderr[-3000:]
    assert "loss " in r.stdout and "ranks agree yes" in r.stdout and "resume      equal" in r.stdout
    assert "MFU n/a" in r.stdout and r.stderr.strip().endswith("canary: ok")


def test_a_failed_canary_is_exit_3_in_one_line(home, tmp_path, monkeypatch, capsys):
    from nanochat_cli.cli import main
    from nanochat_cli.train import canary

    write_shards(home)
    bad = {"ok": False, "loss_first": 5.5, "loss_last": 5.6, "ranks_agree": True, "resume_equal": False,
           "tok_per_s": 10.0, "mfu": None, "resumed_losses": [1.0, 2.0], "world_size": 1, "device": "cpu",
           "steps": 20, "depth": 2, "params": 1, "device_name": "x", "backend": None, "dtype": "float32",
           "compiled": False, "batch": [2, 32], "peak_flops": None}
    monkeypatch.setattr(canary, "run_canary", lambda cfg: bad)
    with pytest.raises(SystemExit) as e:
        main(["doctor", "--canary", "--config", str(tiny_config_file(tmp_path))])
    err = capsys.readouterr().err
    assert e.value.code == 3 and err.count("\n") == 1, err
    assert "canary failed on 1 × cpu: the loss did not fall; a reloaded checkpoint does not repeat the losses" in err


def test_the_canary_refuses_a_gpu_profile_without_gpus_before_starting(run_cli):
    r = run_cli("doctor", "--canary", "--profile", "a100x8", "--json")
    assert r.returncode == 3 and "8 CUDA GPUs per node" in r.stderr and len(r.stderr.splitlines()) == 1
    assert r.stdout == ""
