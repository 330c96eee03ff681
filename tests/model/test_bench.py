"""`nanochat bench train`: one JSON document with the step figures; bad options are usage errors."""

import json

import pytest


def test_bench_train_json_small(run_cli):
    r = run_cli("bench", "train", "--json", "--compile", "off", "--depth", "1", "--seq-len", "16", "--batch", "2",
                "--vocab-size", "512", "--steps", "2", "--warmup", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["config"]["tokens_per_step"] == 32 and out["config"]["n_embd"] == 64
    assert out["tok_per_s"] > 0 and out["step_ms"] > 0 and out["peak_rss_mb"] > 0
    assert out["compiled"] is False and out["dtype"] in ("float32", "bfloat16") and out["dtype_reason"]
    assert out["fwd_ms"] + out["bwd_ms"] + out["optim_ms"] > 0 and out["mfu"] is None
    assert out["flops_per_token"] == 6 * (12 * 64 * 64 + 512 * 64) + 12 * 1 * 64 * 16


def test_bench_train_rejects_bad_values(run_cli):
    r = run_cli("bench", "train", "--steps", "0")
    assert r.returncode == 2 and "--steps" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("bench", "train", "--dtype", "float64")
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.slow
def test_bench_train_compiles_by_default_unlike_the_cpu_tiny_profile(run_cli):
    """The bench times warm steps of the reference config, so it takes the fastest setting (compiled where a
    C++ compiler exists) even though the default profile (cpu-tiny) turns compile off."""
    from nanochat_cli.model.precision import compiler_available

    r = run_cli("bench", "train", "--json", "--depth", "1", "--seq-len", "16", "--batch", "2",
                "--vocab-size", "512", "--steps", "1", "--warmup", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["compiled"] is compiler_available()[0], out["compile_reason"]
