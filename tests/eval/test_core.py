"""CORE: prompts exactly as nanochat renders them, the three scoring rules, centering, sharding, and the
whole metric on a small bundle in the real format."""

from __future__ import annotations

import math

import pytest
import torch

from nanochat_cli.errors import PreflightError
from nanochat_cli.eval import core
from tests.eval.bundle import make_bundle


def test_missing_bundle_names_the_fetch_command(tmp_path):
    with pytest.raises(PreflightError) as e:
        core.load_bundle(tmp_path / "eval_bundle")
    assert "nanochat data fetch eval" in e.value.one_line()


def test_bundle_specs_and_baselines(tmp_path):
    specs = core.load_bundle(make_bundle(tmp_path))
    assert [(s.label, s.task_type, s.num_fewshot, s.delimiter, s.baseline) for s in specs] == [
        ("arc_easy", "multiple_choice", 3, "\nAnswer: ", 0.25), ("winograd", "schema", 0, " ", 0.5),
        ("lambada_openai", "language_modeling", 2, " ", 0.0)]


def test_prompts_match_nanochat_templates():
    mc = core.TaskSpec("t", "u", "multiple_choice", 1, "\nAnswer: ", 0.25)
    shot = {"query": "Q0", "choices": ["a", "b"], "gold": 1}
    assert core.render_prompts(mc, {"query": "Q1", "choices": ["c", "d"], "gold": 0}, [shot]) == [
        "Q0\nAnswer: b\n\nQ1\nAnswer: c", "Q0\nAnswer: b\n\nQ1\nAnswer: d"]
    sc = core.TaskSpec("t", "u", "schema", 1, " ", 0.5)
    shot = {"context_options": ["x1", "x2"], "continuation": "end", "gold": 0}
    assert core.render_prompts(sc, {"context_options": ["A", "B"], "continuation": "c.", "gold": 1}, [shot]) == [
        "x1 end\n\nA c.", "x1 end\n\nB c."]
    lm = core.TaskSpec("t", "u", "language_modeling", 1, "\nAnswer: ", 0.0)
    shot = {"context": " ctx0 ", "continuation": "ans0"}
    assert core.render_prompts(lm, {"context": "ctx1 ", "continuation": "ans1"}, [shot]) == [
        "ctx0\nAnswer: ans0\n\nctx1\nAnswer:", "ctx0\nAnswer: ans0\n\nctx1\nAnswer: ans1"]


def test_fewshot_draw_is_nanochats_and_excludes_the_item():
    rows = [{"i": i} for i in range(20)]
    shots = core.fewshot_rows(rows, 5, 3)
    import random
    expect = random.Random(1234 + 5).sample([j for j in range(20) if j != 5], 3)
    assert [s["i"] for s in shots] == expect and 5 not in expect


def test_token_spans():
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    tok = ByteTokenizer()
    mc = core.TaskSpec("t", "u", "multiple_choice", 0, " ", 0)
    ids, spans = core.tokenize_example(mc, ["Q abc", "Q ab"], tok)
    assert ids[0][0] == tok.bos_id and spans == [(5, 6), (5, 5)]  # bos + "Q ab" common; "c" scored in the first
    sc = core.TaskSpec("t", "u", "schema", 0, " ", 0)
    ids, spans = core.tokenize_example(sc, ["one x.", "two x."], tok)
    assert spans == [(len(ids[0]) - 3, len(ids[0])), (len(ids[1]) - 3, len(ids[1]))]
    lm = core.TaskSpec("t", "u", "language_modeling", 0, " ", 0)
    ids, spans = core.tokenize_example(lm, ["ctx", "ctx 42"], tok)
    assert len(ids) == 1 and spans == [(4, 7)]


class Prefers(torch.nn.Module):
    """A fake model: the logit of token `favourite` is high everywhere, or (copy=True) the next token is
    predicted to equal the current one."""

    def __init__(self, vocab, favourite=None, copy=False):
        super().__init__()
        self.vocab, self.favourite, self.copy = vocab, favourite, copy

    def forward(self, idx):
        B, T = idx.shape
        logits = torch.zeros(B, T, self.vocab)
        if self.copy:
            logits.scatter_(2, idx.unsqueeze(-1), 10.0)
        else:
            logits[..., self.favourite] = 10.0
        return logits


def test_scoring_rules():
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    tok = ByteTokenizer()
    mc = core.TaskSpec("t", "u", "multiple_choice", 0, " ", 0)
    model = Prefers(tok.vocab_size, favourite=ord("x"))
    ids, spans = core.tokenize_example(mc, ["Q: ab", "Q: xx", "Q: xa"], tok)
    assert core.score_example(model, mc, ids, spans, 1, "cpu", None)
    assert not core.score_example(model, mc, ids, spans, 2, "cpu", None)
    # schema: same continuation; the copy model likes the context whose last byte starts the continuation
    sc = core.TaskSpec("t", "u", "schema", 0, "", 0)
    ids, spans = core.tokenize_example(sc, ["ctx b" + "aaa", "ctx a" + "aaa"], tok)
    assert core.score_example(Prefers(tok.vocab_size, copy=True), sc, ids, spans, 1, "cpu", None)
    # LM: every continuation token must be the argmax
    lm = core.TaskSpec("t", "u", "language_modeling", 0, " ", 0)
    ids, spans = core.tokenize_example(lm, ["zz", "zz xxx"], tok)
    assert core.score_example(model, lm, ids, spans, None, "cpu", None) is False  # " " is not "x"
    ids, spans = core.tokenize_example(lm, ["zz ", "zz xxx"], tok)
    assert core.score_example(model, lm, ids, spans, None, "cpu", None) is True
    # a prompt longer than the context keeps its end (the continuation) and still scores
    ids, spans = core.tokenize_example(lm, ["y" * 50 + " ", "y" * 50 + " xxx"], tok)
    assert core.score_example(model, lm, ids, spans, None, "cpu", 8) is True


def test_centered():
    assert core.centered(0.25, 0.25) == 0 and core.centered(1.0, 0.25) == 1
    assert core.centered(0.5, 0.62) < 0


def test_core_on_fixture_bundle_tiny_gpt(tmp_path, model_tok):
    model, tok = model_tok
    bundle = make_bundle(tmp_path, rows=12)
    lines = []
    res = core.evaluate_core(model, tok, bundle, "cpu", max_per_task=10, progress=lines.append)
    assert set(res["tasks"]) == {"arc_easy", "winograd", "lambada_openai"} and len(lines) == 3
    for r in res["tasks"].values():
        assert r["rows"] == 10 and 0 <= r["accuracy"] <= 1
        assert math.isclose(r["centered"], (r["accuracy"] - r["baseline"]) / (1 - r["baseline"]))
    assert math.isclose(res["core"], sum(r["centered"] for r in res["tasks"].values()) / 3)
    again = core.evaluate_core(model, tok, bundle, "cpu", max_per_task=10)
    assert again["tasks"] == res["tasks"]  # deterministic
    # a perfect "model" for arc gets accuracy 1 where gold is the option of x's
    rows = core.load_rows(bundle, core.load_bundle(bundle)[0])
    assert rows == core.load_rows(bundle, core.load_bundle(bundle)[0])


def test_strided_shards_add_up(tmp_path, model_tok):
    model, tok = model_tok
    bundle = make_bundle(tmp_path, rows=11)
    spec = core.load_bundle(bundle)[0]
    rows = core.load_rows(bundle, spec)
    whole = core.evaluate_task(model, tok, spec, rows, "cpu")
    a = core.evaluate_task(model, tok, spec, rows, "cpu", rank=0, world_size=2)  # 6 rows
    b = core.evaluate_task(model, tok, spec, rows, "cpu", rank=1, world_size=2)  # 5 rows
    assert math.isclose(whole * 11, a * 6 + b * 5, abs_tol=1e-9)


def test_too_few_rows_is_a_clear_error(tmp_path, model_tok):
    model, tok = model_tok
    bundle = make_bundle(tmp_path, rows=12)
    with pytest.raises(PreflightError, match="few-shot"):
        core.evaluate_core(model, tok, bundle, "cpu", max_per_task=3)
