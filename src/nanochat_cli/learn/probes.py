"""Extra cases for components whose training pass at the tiny config leaves paths untested: the
attention kernel and the attention layer with grouped-query attention (n_kv_head < n_head, which the
real configs may use) and after a cached prefix (what generation does).

Each case builds synthetic inputs from a fixed seed and, for modules, copies the reference module's
weights into the learner's, so the two see the same numbers. Costs ~5 ms per component, once.
Everything else is covered by the traced training pass; this does not replace it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from nanochat_cli.learn import harness
from nanochat_cli.learn.trace import describe


@dataclass
class Case:
    name: str
    run_reference: Callable[[], object]
    run_user: Callable[[object], object]
    cause: str
    inputs: dict = field(default_factory=dict)


def _qkv(g, heads, kv_heads, tq, tk, d=16, b=2):
    q = torch.randn(b, heads, tq, d, generator=g)
    k = torch.randn(b, kv_heads, tk, d, generator=g)
    v = torch.randn(b, kv_heads, tk, d, generator=g)
    return q, k, v


def _sdpa_cases(ref) -> list[Case]:
    g = torch.Generator().manual_seed(harness.SEED)
    specs = [
        ("grouped-query attention (4 query heads, 2 key/value heads)", (4, 2, 8, 8), 0,
         "with fewer key/value heads each one serves n_head / n_kv_head query heads: pass enable_gqa=True to "
         "F.scaled_dot_product_attention, or repeat_interleave k and v along the head dim"),
        ("a 3-token chunk after 5 cached positions (n_past=5)", (4, 4, 3, 8), 5,
         "query i sits at position n_past + i and may see keys 0..n_past+i; is_causal=True aligns the mask "
         "top-left, so build it explicitly when n_past > 0 and Tq > 1"),
        ("one new token after 7 cached positions (n_past=7)", (4, 4, 1, 8), 7,
         "a single new query may see every cached key: no causal mask for Tq == 1"),
    ]
    cases = []
    for name, (h, hkv, tq, tk), n_past, cause in specs:
        q, k, v = _qkv(g, h, hkv, tq, tk)
        cases.append(Case(name, lambda q=q, k=k, v=v, n=n_past: ref.sdpa_attention(q, k, v, n),
                          lambda user, q=q, k=k, v=v, n=n_past: user.sdpa_attention(q, k, v, n), cause,
                          {"q": describe(q), "k": describe(k), "v": describe(v), "n_past": str(n_past)}))
    return cases


def _attention_cases(ref) -> list[Case]:
    config = {**harness.TINY, "n_kv_head": 2}
    g = torch.Generator().manual_seed(harness.SEED + 2)
    x = torch.randn(2, 8, config["n_embd"], generator=g)
    cos, sin = ref.rotary_tables(8, config["n_embd"] // config["n_head"])
    torch.manual_seed(harness.SEED)
    ref_attn = ref.CausalSelfAttention(ref.GPTConfig(**config), 0)

    def run_user(user):
        mine = user.CausalSelfAttention(user.GPTConfig(**config), 0)
        mine.load_state_dict(ref_attn.state_dict())
        return mine(x, cos, sin, None)

    return [Case("grouped-query attention (n_kv_head=2 of 4 heads)", lambda: ref_attn(x, cos, sin, None), run_user,
                 "k and v have n_kv_head heads: view them with self.n_kv_head, not self.n_head",
                 {"x": describe(x), "cos": describe(cos), "sin": describe(sin)})]


def cases(component: str, ref) -> list[Case]:
    if component == "sdpa" and hasattr(ref, "sdpa_attention"):
        return _sdpa_cases(ref)
    if component == "attention" and hasattr(ref, "CausalSelfAttention"):
        return _attention_cases(ref)
    return []
