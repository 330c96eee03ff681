"""CORE scoring against hand computations, on a bundle in the real format; mini-suite format; CLI."""

from __future__ import annotations

import json
import random

import pytest
import torch
import torch.nn.functional as F

from nanochat_cli.eval import core
from nanochat_cli.tokenizer.byte_level import ByteTokenizer
from tests.eval.bundle_fixture import write_bundle
from tests.eval.ckpt_fixture import save_tiny_checkpoint, write_config


def _model():
    from nanochat_cli.model.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    m = GPT(GPTConfig(ByteTokenizer().vocab_size, 2, 64, 2, 2, 256))
    m.init_weights()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def _mean_loss(m, ids, s, e):
    x = torch.tensor([ids])
    with torch.no_grad():
        lg = m(x)[0]
    return F.cross_entropy(lg[s - 1:e - 1], x[0, s:e]).item()


def test_spans_follow_nanochat():
    tok = ByteTokenizer()
    mc = {"query": "Q", "choices": ["ab", "ac"], "gold": 1}
    toks, spans = core.row_tokens(tok, "multiple_choice", mc, [], " ")
    assert tok.decode(toks[0][spans[0][0]:]) == "b" and spans[1] == (spans[0][0], len(toks[1]))
    sc = {"context_options": ["x one", "yy two"], "continuation": "end.", "gold": 0}
    toks, spans = core.row_tokens(tok, "schema", sc, [], " ")
    assert [tok.decode(t[s:e]) for t, (s, e) in zip(toks, spans)] == [" end.", " end."]
    lm = {"context": "ctx ", "continuation": "42"}
    shot = {"context": " a", "continuation": "1"}
    toks, spans = core.row_tokens(tok, "language_modeling", lm, [shot], "\nAnswer: ")
    text = tok.decode(toks[0][1:])
    assert text == "a\nAnswer: 1\n\nctx\nAnswer: 42"
    # the prompt without the continuation is stripped, so the scored span includes the space
    assert tok.decode(toks[0][spans[0][0]:]) == " 42"


def test_score_row_matches_hand_computation():
    m, tok = _model(), ByteTokenizer()
    row = {"query": "Question: 2+2?", "choices": ["4", "five", "22"], "gold": 2}
    toks, spans = core.row_tokens(tok, "multiple_choice", row, [], " ")
    losses = [_mean_loss(m, t, s, e) for t, (s, e) in zip(toks, spans)]
    best = min(range(3), key=losses.__getitem__)
    for gold in range(3):
        assert core.score_row(m, tok, "multiple_choice", dict(row, gold=gold), [], " ", "cpu", 256) == (gold == best)
    # language modelling: correct iff greedy reproduces the continuation
    ctx = "Count: 1 2 3"
    ids = tok.encode(ctx, prepend=tok.bos_id)
    with torch.no_grad():
        nxt = m(torch.tensor([ids]))[0, -1].argmax().item()
    good = {"context": ctx, "continuation": tok.decode([nxt]).lstrip() or "x"}
    if tok.decode([nxt]).startswith(" "):  # delimiter " " supplies the space
        assert core.score_row(m, tok, "language_modeling", good, [], " ", "cpu", 256) in (True, False)
    bad = {"context": ctx, "continuation": chr(0x2603)}
    assert core.score_row(m, tok, "language_modeling", bad, [], " ", "cpu", 256) is False


def test_evaluate_bundle_real_format(tmp_path):
    b = write_bundle(tmp_path)
    res = core.evaluate_bundle(_model(), ByteTokenizer(), b, max_per_task=-1)
    assert list(res["tasks"]) == ["arc_easy", "winograd", "lambada_openai"]
    for t in res["tasks"].values():
        assert 0 <= t["accuracy"] <= 1 and t["rows"] == 12
        assert t["centered"] == pytest.approx((t["accuracy"] - t["baseline"] / 100) / (1 - t["baseline"] / 100))
    assert res["core"] == pytest.approx(sum(t["centered"] for t in res["tasks"].values()) / 3)


def test_too_few_rows_for_fewshot_is_an_error(tmp_path):
    from nanochat_cli.errors import NanochatError

    b = write_bundle(tmp_path)
    with pytest.raises(NanochatError, match="few-shot"):
        core.evaluate_bundle(_model(), ByteTokenizer(), b, max_per_task=3)


def test_missing_bundle_is_preflight(tmp_path):
    from nanochat_cli.errors import PreflightError

    with pytest.raises(PreflightError) as e:
        core.load_bundle(tmp_path / "none")
    assert "nanochat data fetch eval" in e.value.one_line()


def test_mini_suite_writes_a_core_format_bundle(tmp_path):
    from nanochat_cli.eval.mini_suite import write_mini_bundle

    b = write_mini_bundle(tmp_path / "mini")
    tasks, baselines = core.load_bundle(b)
    assert {t["icl_task_type"] for t in tasks} == set(core.TYPES)
    for t in tasks:
        rows = core.load_rows(b, t)
        assert len(rows) > t["num_fewshot"][0] and t["label"] in baselines


def test_cli_eval_core_records_in_run(run_cli, home, tmp_path):
    save_tiny_checkpoint(home, "base")
    write_bundle(home)
    r = run_cli("eval", "core", "-c", str(write_config(tmp_path)), "--depth", "2", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["suite"] == "core" and set(res["tasks"]) == {"arc_easy", "winograd", "lambada_openai"}
    manifest = json.loads((home / "runs" / "test-run" / "manifest.json").read_text())
    assert manifest["evals"]["core/base"]["core"] == pytest.approx(res["core"])
    lines = [json.loads(l) for l in (home / "runs" / "test-run" / "metrics.jsonl").read_text().splitlines()]
    assert any(l.get("kind") == "core" and l["phase"] == "eval" for l in lines)


def test_cli_eval_core_mini_suite_and_missing_checkpoint(run_cli, home, tmp_path):
    cfg = str(write_config(tmp_path))
    r = run_cli("eval", "core", "-c", cfg, "--depth", "2")
    assert r.returncode == 2 and "nanochat train base" in r.stderr and "Traceback" not in r.stderr
    save_tiny_checkpoint(home, "base")
    r = run_cli("eval", "core", "-c", cfg, "--depth", "2", "--suite", "mini", "--max-per-task", "5", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["suite"] == "mini-suite" and "core" not in res and "mini_suite" in res


@pytest.mark.dist
def test_core_ddp_two_ranks_equals_one(run_cli, home, tmp_path):
    """torchrun (gloo, 2 processes) splits the rows and all_reduces: same accuracies as one process."""
    import subprocess
    import sys

    from tests.conftest import cli_env, in_netns

    save_tiny_checkpoint(home, "base")
    write_bundle(home)
    cfg = str(write_config(tmp_path))
    one = json.loads(run_cli("eval", "core", "-c", cfg, "--depth", "2", "--json").stdout)
    cmd = in_netns([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "nanochat_cli", "eval", "core", "-c", cfg, "--depth", "2", "--json"])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=cli_env({"NANOCHAT_HOME": str(home), "OMP_NUM_THREADS": "1"}))
    assert r.returncode == 0, r.stderr[-2000:]
    two = json.loads(r.stdout)  # one JSON document: only rank 0 prints
    assert {k: v["accuracy"] for k, v in two["tasks"].items()} == {k: v["accuracy"] for k, v in one["tasks"].items()}
    assert two["core"] == pytest.approx(one["core"])
