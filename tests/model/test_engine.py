"""Engine: cached generation equals uncached token for token; the calculator is safe; tool results are forced."""

from __future__ import annotations

import pytest

from nanochat_cli.model.calculator import calculate
from nanochat_cli.model.engine import Engine, GenerationConfig
from tests.tiny import byte_gpt


def _model(seed=0, n_kv_head=2):
    # spread: zero-initialised projections would make every logit equal
    return byte_gpt(seq_len=128, seed=seed, n_layer=2, n_embd=64, n_head=2, n_kv_head=n_kv_head, spread=0.3)


@pytest.mark.parametrize("n_kv_head", [2, 1])
def test_cached_equals_uncached_greedy(n_kv_head):
    model, tok = _model(n_kv_head=n_kv_head)
    eng = Engine(model, tok)
    prompt = tok.encode("hello world", prepend=tok.bos_id)
    gen = GenerationConfig(max_tokens=40, temperature=0.0)
    a = eng.generate_batch(prompt, 1, gen, use_cache=True)[0]
    b = eng.generate_batch(prompt, 1, gen, use_cache=False)[0]
    assert len(a) > 5 and a == b


def test_multiple_samples_share_prefill_and_differ():
    model, tok = _model()
    eng = Engine(model, tok)
    prompt = tok.encode("abc", prepend=tok.bos_id)
    outs = eng.generate_batch(prompt, 4, GenerationConfig(max_tokens=20, temperature=1.0, top_k=50, seed=1))
    assert len(outs) == 4 and len({tuple(o) for o in outs}) > 1
    # seeded: the same call gives the same samples
    assert outs == eng.generate_batch(prompt, 4, GenerationConfig(max_tokens=20, temperature=1.0, top_k=50, seed=1))
    # greedy rows of a batch equal a single greedy generation
    g = GenerationConfig(max_tokens=20, temperature=0.0)
    single = eng.generate_batch(prompt, 1, g)[0]
    assert all(o == single for o in eng.generate_batch(prompt, 3, g))


def test_prompt_longer_than_context_is_refused():
    model, tok = _model()
    with pytest.raises(ValueError, match="context"):
        list(Engine(model, tok).generate([1] * 200, 1))


def test_tool_call_result_is_forced():
    model, tok = _model()
    eng = Engine(model, tok)
    ps, pe = tok.special_id("<|python_start|>"), tok.special_id("<|python_end|>")
    os_, oe = tok.special_id("<|output_start|>"), tok.special_id("<|output_end|>")
    forced: list[list[int]] = [[]]
    in_py = [None]
    for t in [ps, *tok.encode("12*3+1"), pe]:
        eng._track_tool(0, t, in_py, forced)
    assert forced[0] == [os_, *tok.encode("37"), oe]


@pytest.mark.parametrize("expr,want", [
    ("1+2", "3"), ("12*3+1", "37"), ("7/2", "3.5"), ("2**10", "1024"), ("(3-5)*4", "-8"), ("10//3", "3"),
    ("1,000 + 1", "1001"), ("'strawberry'.count('r')", "3"), ("8/4", "2"),
])
def test_calculator_allows_arithmetic(expr, want):
    assert calculate(expr) == want


@pytest.mark.parametrize("expr", [
    "__import__('os').system('touch /tmp/pwned')", "open('/etc/passwd').read()", "9**9**9", "10**100",
    "x + 1", "'a'.upper()", "'abc'.count(x)", "().__class__", "1/0", "lambda: 1", "[1,2]", "'ab' * 3", "",
    "1" * 300,
])
def test_calculator_refuses_everything_else(expr):
    assert calculate(expr) is None
