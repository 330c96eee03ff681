"""Engine: cached decoding reproduces uncached decoding, seeded sampling, N samples, stops, the calculator
tool (forced output tokens), and the calculator's refusals."""

from __future__ import annotations

import pytest
import torch

from nanochat_cli.model.calculator import calculate, evaluate, CalculatorError
from nanochat_cli.model.engine import Engine
from nanochat_cli.model.gpt import GPT, GPTConfig
from nanochat_cli.tokenizer.byte_level import ByteTokenizer


def _model(seed=0, n_kv_head=2):
    torch.manual_seed(seed)
    tok = ByteTokenizer()
    m = GPT(GPTConfig(tok.vocab_size, n_layer=2, n_embd=64, n_head=2, n_kv_head=n_kv_head, seq_len=64))
    m.init_weights()
    with torch.no_grad():  # init zeroes the output projections: perturb so every layer matters
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m, tok


@pytest.mark.parametrize("n_kv_head", [2, 1])
def test_cached_equals_uncached_greedy(n_kv_head):
    m, tok = _model(n_kv_head=n_kv_head)
    e = Engine(m, tok)
    prompt = tok.encode("The river", prepend=tok.bos_id)
    a, _ = e.generate_batch(prompt, 2, max_tokens=48, temperature=0.0, stop=False)
    b, _ = e.generate_batch(prompt, 2, max_tokens=48, temperature=0.0, stop=False, use_cache=False)
    assert len(a[0]) == len(prompt) + 48
    assert a == b
    # and equal to a hand-written argmax loop over the full sequence
    x = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(48):
            x = torch.cat([x, m(x)[:, -1, :tok.vocab_size].argmax(-1, keepdim=True)], 1)
    assert a[0] == x[0].tolist()


def test_sampling_is_seeded_and_samples_differ():
    m, tok = _model()
    e = Engine(m, tok)
    prompt = tok.encode("hi", prepend=tok.bos_id)
    a, _ = e.generate_batch(prompt, 4, max_tokens=30, temperature=1.0, top_k=50, seed=3, stop=False)
    b, _ = e.generate_batch(prompt, 4, max_tokens=30, temperature=1.0, top_k=50, seed=3, stop=False)
    c, _ = e.generate_batch(prompt, 4, max_tokens=30, temperature=1.0, top_k=50, seed=4, stop=False)
    assert a == b and a != c
    assert len({tuple(r) for r in a}) > 1  # one prefill, four different samples


def test_top_k_one_is_greedy():
    m, tok = _model()
    e = Engine(m, tok)
    prompt = tok.encode("abc", prepend=tok.bos_id)
    g, _ = e.generate_batch(prompt, 1, max_tokens=20, temperature=0.0, stop=False)
    k1, _ = e.generate_batch(prompt, 1, max_tokens=20, temperature=1.0, top_k=1, stop=False)
    assert g == k1


class _Scripted(torch.nn.Module):
    """A 'model' that emits a fixed script of tokens (then repeats its last), whatever the input: lets
    the tool and stop logic be tested exactly. Honours the KV cache contract (advances pos)."""

    def __init__(self, script, vocab):
        super().__init__()
        self.script, self.vocab = script, vocab
        self.config = GPTConfig(vocab, 1, 8, 1, 1, 256)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, idx, kv_cache=None):
        B, T = idx.shape
        n = (kv_cache.pos if kv_cache is not None else 0) + T
        if kv_cache is not None:
            kv_cache.pos += T
        self.seen.append(idx[0].tolist())
        out = torch.full((B, T, self.vocab), -1e9)
        nxt = self.script[min(n - self.prompt_len, len(self.script) - 1)]
        out[:, -1, nxt] = 0.0
        return out


def test_calculator_tool_forces_output_and_stops():
    tok = ByteTokenizer()
    sid = tok.special_id
    script = ([ord(c) for c in "x="] + [sid("<|python_start|>")] + [ord(c) for c in "12*(3+4)"]
              + [sid("<|python_end|>")] + [ord("!")] * 10 + [sid("<|assistant_end|>")])
    m = _Scripted(script, tok.vocab_size)
    prompt = [tok.bos_id, sid("<|assistant_start|>")]
    m.prompt_len = len(prompt)
    e = Engine(m, tok)
    out, masks = e.generate_batch(prompt, 1, max_tokens=100, temperature=0.0)
    text = tok.decode(out[0][len(prompt):])
    assert "<|python_start|>12*(3+4)<|python_end|><|output_start|>84<|output_end|>" in text
    forced = [t for t, mk in zip(out[0], masks[0]) if mk == 0][len(prompt):]
    assert tok.decode(forced) == "<|output_start|>84<|output_end|>"
    assert sid("<|assistant_end|>") not in out[0]  # stopped there, not included


def test_streaming_yields_one_column_per_step():
    m, tok = _model()
    e = Engine(m, tok)
    steps = list(e.generate(tok.encode("a", prepend=tok.bos_id), 3, max_tokens=5, temperature=0.0, stop=False))
    assert len(steps) == 5 and all(len(col) == 3 and len(mk) == 3 for col, mk in steps)


@pytest.mark.parametrize("expr,want", [("1+2*3", "7"), ("48/4", "12"), ("7/2", "3.5"), ("2**10", "1024"),
                                       ("-(3-10)//2", "3"), ("17 % 5", "2"), ("1,000+1", "1001"),
                                       ("'strawberry'.count('r')", "3"), ('"banana".count("a")', "3")])
def test_calculator_arithmetic(expr, want):
    assert calculate(expr) == want


@pytest.mark.parametrize("expr", [
    "__import__('os').system('true')", "open('/etc/passwd').read()", "x + 1", "(1).__class__",
    "'a'.__class__", "'abc'.upper()", "'a'.count(x)", "[1, 2]", "lambda: 1", "9**9**9", "10**100000",
    "2**(2**20)", "'a' * 10**9", "1/0", "True + 1", "1e308*10", "(" * 300 + "1" + ")" * 300, "",
    "().__class__.__bases__[0]", "'ab'.count('a', 0)", "'%s' % 1",
])
def test_calculator_refuses(expr):
    assert calculate(expr) is None
    with pytest.raises(CalculatorError):
        evaluate(expr)
