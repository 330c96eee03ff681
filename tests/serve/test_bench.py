"""`nanochat bench serve --json` runs the real server and reports its figures (their values are not asserted:
speed is measured by the bench, never by a test)."""

from __future__ import annotations

import json


def test_bench_serve_reports_the_figures(run_cli):
    r = run_cli("bench", "serve", "--json", "--shape", "cpu-tiny", "--rounds", "1", "--new-tokens", "8",
                timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    for key in ("speedup_8", "single_tok_per_s", "batch8_tok_per_s", "ttft_ms_p50", "ttft_ms_p95", "cpu",
                "avx512_bf16", "limiting_shape"):
        assert key in res, key
    shape = res["shapes"]["cpu-tiny"]
    assert shape["all_requests_full_length"] is True  # every request produced exactly --new-tokens
    assert shape["speedup_8"] > 0 and shape["chat_engine_tok_per_s"] > 0
    assert shape["decode"]["batch_sizes"][-1] == 8


def test_bench_serve_refuses_an_unknown_shape(run_cli):
    r = run_cli("bench", "serve", "--shape", "d99")
    assert r.returncode == 2 and "cpu-tiny" in r.stderr and "Traceback" not in r.stderr
