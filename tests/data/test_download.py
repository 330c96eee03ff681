"""download_file and `nanochat data fetch base` against a loopback server that injects faults."""

from __future__ import annotations

import json

import pytest

from nanochat_cli.data.download import download_file, verify_parquet
from tests.data.hubfixtures import shard_bytes

SHARD = shard_bytes(0, rows=8000)  # ~300 KB: several 64 KiB read chunks, so a cut body leaves a resumable part


def _get(hub, dest, **kw):
    return download_file(f"{hub.url}/f/shard_00000.parquet", dest, retries=kw.pop("retries", 4), backoff=0.0,
                         timeout=5, verify=verify_parquet, **kw)


def test_clean_download_is_verified_and_renamed(fake_hub, tmp_path):
    fake_hub.files["/f/shard_00000.parquet"] = SHARD
    r = _get(fake_hub, tmp_path / "s.parquet")
    assert r.status == "downloaded" and r.attempts == 1
    assert (tmp_path / "s.parquet").read_bytes() == SHARD
    assert not (tmp_path / "s.parquet.tmp").exists()


@pytest.mark.parametrize("kind", ["reset", "truncate"])
def test_cut_body_resumes_with_range(fake_hub, tmp_path, kind):
    fake_hub.files["/f/shard_00000.parquet"] = SHARD
    fake_hub.add_fault(r"GET /f/", kind, times=2, after=len(SHARD) * 2 // 3)
    r = _get(fake_hub, tmp_path / "s.parquet")
    assert r.status == "downloaded", r.detail
    assert (tmp_path / "s.parquet").read_bytes() == SHARD
    if kind == "truncate":  # after an RST the kernel may drop bytes already received, so only FIN must resume
        ranges = [line for line in fake_hub.log if "Range=bytes=" in line]
        assert ranges and all(not line.endswith("bytes=0-") for line in ranges)  # resumed, not restarted


def test_503_and_connection_drop_are_retried(fake_hub, tmp_path):
    fake_hub.files["/f/shard_00000.parquet"] = SHARD
    fake_hub.add_fault(r"GET /f/", "status", times=2, status=503, retry_after="0")
    fake_hub.add_fault(r"GET /f/", "drop", times=1)
    r = _get(fake_hub, tmp_path / "s.parquet")
    assert r.status == "downloaded" and r.attempts == 4


def test_server_ignoring_range_restarts_cleanly(fake_hub, tmp_path):
    fake_hub.files["/f/shard_00000.parquet"] = SHARD
    fake_hub.add_fault(r"GET /f/", "truncate", times=1, after=5000)
    fake_hub.add_fault(r"GET /f/", "ignore_range", times=1)
    r = _get(fake_hub, tmp_path / "s.parquet")
    assert r.status == "downloaded"
    assert (tmp_path / "s.parquet").read_bytes() == SHARD


def test_truncated_file_is_never_accepted(fake_hub, tmp_path):
    fake_hub.files["/f/shard_00000.parquet"] = SHARD
    fake_hub.add_fault(r"GET /f/", "truncate", times=99, after=1000)
    r = _get(fake_hub, tmp_path / "s.parquet", retries=2)
    assert r.status == "failed" and "gave up after 3 attempts" in r.detail
    assert not (tmp_path / "s.parquet").exists()


def test_html_error_page_with_200_is_rejected(fake_hub, tmp_path):
    fake_hub.files["/f/shard_00000.parquet"] = b"<html>rate limited</html>"
    r = _get(fake_hub, tmp_path / "s.parquet", retries=1)
    assert r.status == "failed" and "parquet" in r.detail
    assert not (tmp_path / "s.parquet").exists() and not (tmp_path / "s.parquet.tmp").exists()


def test_404_is_not_retried(fake_hub, tmp_path):
    r = _get(fake_hub, tmp_path / "s.parquet")
    assert r.status == "failed" and r.attempts == 1 and "404" in r.detail


# ------------------------------------------------------------------------------- the command
FW = {"NANOCHAT_DATA__SOURCE": "fineweb"}


def _shards(n):
    return {f"/fw/shard_{i:05d}.parquet": shard_bytes(i, rows=2000) for i in range(n)}


def test_fetch_base_with_faults_then_idempotent(hub_cli, home):
    faults = [{"pattern": "GET /fw/shard_00001", "kind": "reset", "times": 1, "after": 3000},
              {"pattern": "GET /fw/shard_00002", "kind": "status", "times": 2, "status": 503},
              {"pattern": "GET /fw/shard_00000", "kind": "truncate", "times": 1, "after": 100}]
    r = hub_cli("data", "fetch", "base", "--shards", "3", "--base-url", "{URL}/fw", "--json",
                files=_shards(3), faults=faults, env=FW)
    assert r.rc == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["validation_shard"] == "shard_00002.parquet" and not out["failed"]
    for i in range(3):
        assert (home / "base_data" / f"shard_{i:05d}.parquet").read_bytes() == _shards(3)[f"/fw/shard_{i:05d}.parquet"]
    assert not list((home / "base_data").glob("*.tmp"))
    # Second run: every shard is re-verified from disk, nothing is requested.
    again = hub_cli("data", "fetch", "base", "--shards", "3", "--base-url", "{URL}/fw", files=_shards(3), env=FW)
    assert again.rc == 0 and again.log == [], again.log
    assert "3 already present, 0 downloaded" in again.stdout
    # A shard damaged on disk is noticed and fetched again.
    (home / "base_data" / "shard_00001.parquet").write_bytes(b"PAR1 cut")
    third = hub_cli("data", "fetch", "base", "--shards", "3", "--base-url", "{URL}/fw", files=_shards(3), env=FW)
    assert third.rc == 0 and third.requests("GET /fw/shard_00001") and not third.requests("shard_00000")


def test_fetch_base_lists_the_shards_that_failed(hub_cli, home):
    files = _shards(4)
    del files["/fw/shard_00002.parquet"]
    faults = [{"pattern": "GET /fw/shard_00003", "kind": "truncate", "times": 50, "after": 500}]
    r = hub_cli("data", "fetch", "base", "--shards", "4", "--base-url", "{URL}/fw", "--retries", "2",
                files=files, faults=faults, env=FW)
    assert r.rc == 1
    err = r.stderr.strip().splitlines()[-1]
    assert "2 shard(s) failed" in err and "shard_00002.parquet" in err and "shard_00003.parquet" in err
    assert not (home / "base_data" / "shard_00002.parquet").exists()
    assert not (home / "base_data" / "shard_00003.parquet").exists()
    assert (home / "base_data" / "shard_00000.parquet").exists()


@pytest.mark.parametrize("args,needle", [
    (["data", "fetch", "base", "--source", "fineweb", "--shards", "0"], "data.shards"),
    (["data", "fetch", "base", "--source", "fineweb", "--shards", "5000"], "data.shards"),
    (["data", "fetch", "base", "--shards", "notanumber"], "--shards"),
    (["data", "fetch", "everything"], "unknown phase"),
    (["data", "status", "pretrain"], "unknown phase"),
    (["data", "fetch", "base", "--shards", "4"], "--source fineweb"),
])
def test_bad_input_is_one_line_exit_2(run_cli, args, needle):
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr


def test_unwritable_home_is_exit_2(run_cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    r = run_cli("--home", str(blocker / "home"), "data", "fetch", "base", "--source", "fineweb", "--shards", "2",
                "--base-url", "http://127.0.0.1:9/x")
    assert r.returncode == 2 and "cannot write" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_slow_response_times_out_and_is_retried(fake_hub, tmp_path):
    fake_hub.files["/f/shard_00000.parquet"] = SHARD
    fake_hub.add_fault(r"GET /f/", "slow", times=1, delay=2.0)
    r = download_file(f"{fake_hub.url}/f/shard_00000.parquet", tmp_path / "s.parquet", retries=2, backoff=0.0,
                      timeout=0.5, verify=verify_parquet)
    assert r.status == "downloaded" and r.attempts == 2
