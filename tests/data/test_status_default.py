"""`nanochat data status` with no phase checks what the profile's pipeline will load, and no more."""

from __future__ import annotations


def test_status_checks_what_the_profile_needs(run_cli):
    assert run_cli("data", "fetch", "base").returncode == 0          # cpu-tiny: the embedded corpus
    r = run_cli("data", "status")
    assert r.returncode == 0, r.stderr                               # packaged mid/SFT: no hub datasets needed
    assert "embedded" in r.stdout
    r = run_cli("data", "status", "all")                             # asked explicitly: hub items are missing
    # the fix fetches what is missing, not `data fetch all` (on a GPU profile that is 24 GB of shards)
    assert r.returncode == 3 and "run `nanochat data fetch mid sft eval`" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("data", "status", "sft", "eval")                     # several phases at once
    assert r.returncode == 3 and "run `nanochat data fetch sft eval`" in r.stderr, r.stderr


def test_gpu_profile_needs_the_hub_datasets(run_cli):
    r = run_cli("data", "status", "--profile", "a100x8")
    assert r.returncode == 3 and "MMLU" in r.stderr and "nanochat data fetch all" in r.stderr
