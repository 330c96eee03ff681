"""Batched decoding for a server: one KV-cache slot per sequence, one forward per token for all of them.

`Engine` decodes one prompt (or n samples of it) at a time. Here sequences of different lengths share a
forward: each row writes its key/value at its own position and attends to its own prefix under a mask, with
rotary angles of its own position. The weights are read once per step for every row, which is where the
throughput is on a CPU (8 rows cost ~2-3x one row at d4, measured in `nanochat bench serve`).

Exactness: a greedy request must get the same tokens alone as beside 7 others. Matmul kernels pick their
blocking by shape (MKL on this AVX2 CPU gives other bits for 1-3 rows than for 4+, and with 2 threads for
some row counts between), so `probe()` runs the decode step on random data at every row count and keeps only
the counts whose rows come out bit-identical to the full batch; a step pads to the next kept count. Attention
runs over a length rounded up to a multiple of 64 (masked, so padding adds exact zeros); the probe also checks
that this rounding changes no bit, else every step attends over the whole context. Prefill runs per sequence
with the model's own forward, so it is the same computation whether the sequence is alone or not.
Not here: sampling, stop tokens, tools, scheduling (serve/scheduler.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nanochat_cli.model.gpt import GPT, KVCache, norm

LENGTH_BUCKET = 64  # attention length granularity; the probe checks that rounding up to it is exact
PROBE_POSITIONS = 256  # the probe fills this many cache positions (enough to cross several buckets)


class _SlotCache(KVCache):
    """A KVCache over one slot of the shared cache (views, not its own tensors), so the model's own forward
    prefills straight into the slot; `insert` is KVCache's."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor):  # not KVCache.__init__: that allocates new tensors
        self.k, self.v = k, v  # (n_layer, 1, n_kv_head, seq_len, head_dim) views
        self.n_layer, self.seq_len, self.batch_size = k.size(0), k.size(3), k.size(1)
        self.pos = 0


class BatchedDecoder:
    """KV cache of `max_batch` slots of the model's full context. Rows of a step are slots 0..B-1 (the caller
    keeps its live sequences packed at the front; `copy_slot` moves one)."""

    def __init__(self, model: GPT, max_batch: int):
        c = model.config
        self.model, self.config, self.max_batch = model, c, max_batch
        self.capacity = c.seq_len
        p = next(model.parameters())
        self.device, self.dtype = p.device, model.compute_dtype
        self.vocab_size = c.vocab_size
        shape = (c.n_layer, max_batch, c.n_kv_head, c.seq_len, c.head_dim)
        self.k = torch.zeros(shape, device=self.device, dtype=self.dtype)
        self.v = torch.zeros(shape, device=self.device, dtype=self.dtype)
        # Weights are frozen while serving, so they are laid out for decoding once: q, k and v in one matmul per
        # layer (one kernel instead of three), and on CPU stored transposed, (in, out) row-major: MKL's sgemm
        # is ~1.6x faster on 4-8 rows that way than on the (out, in) layout F.linear passes (lm_head at d4,
        # 8 rows: 0.82 vs 1.32 ms). Costs one more copy of the weights in memory.
        blocks = model.transformer.h
        mats = {"qkv": [torch.cat([b.attn.c_q.weight, b.attn.c_k.weight, b.attn.c_v.weight]) for b in blocks],
                "proj": [b.attn.c_proj.weight for b in blocks], "fc": [b.mlp.c_fc.weight for b in blocks],
                "fc_out": [b.mlp.c_proj.weight for b in blocks], "head": [model.lm_head.weight[:c.vocab_size]]}
        transpose = self.device.type == "cpu"
        self.w = {k: [(w.t().contiguous() if transpose else w).to(self.dtype) for w in ws] for k, ws in mats.items()}
        self._transposed = transpose
        self.batch_sizes = list(range(1, max_batch + 1))  # until probe() says otherwise
        self.bucketed = True

    # --- what the scheduler calls ----------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, slot: int, ids: list[int]) -> torch.Tensor:
        """Run the prompt through the model into `slot`; the fp32 logits (vocab,) of its last position."""
        cache = _SlotCache(self.k[:, slot:slot + 1], self.v[:, slot:slot + 1])
        idx = torch.tensor([ids], dtype=torch.long, device=self.device)
        hidden = self.model.hidden_states(idx, kv_cache=cache)  # (1, T, C)
        return self.model.logits(hidden[0, -1:])[0]

    def copy_slot(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` cached positions of slot `src` into slot `dst` (n samples of one prefill,
        or packing the live rows to the front when one finishes)."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]

    def padded(self, rows: int) -> int:
        """The row count a step of `rows` sequences really computes (the smallest exact one ≥ rows)."""
        return next(m for m in self.batch_sizes if m >= rows)

    @torch.inference_mode()
    def step(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        """Feed tokens[i] at positions[i] for rows 0..B-1; fp32 logits (B, vocab) of the next token."""
        b = len(tokens)
        m = self.padded(b)
        pad = m - b  # padding rows sit in free slots at position 0: they write nothing anyone reads
        tok = torch.tensor(tokens + [0] * pad, dtype=torch.long, device=self.device)
        pos = torch.tensor(positions + [0] * pad, dtype=torch.long, device=self.device)
        return self._forward(tok, pos, self._length(max(positions) + 1))[:b]

    # --- the forward ------------------------------------------------------------------------------------

    def _length(self, needed: int) -> int:
        if not self.bucketed:
            return self.capacity
        return min(self.capacity, -(-needed // LENGTH_BUCKET) * LENGTH_BUCKET)

    def _linear(self, x: torch.Tensor, name: str, layer: int = 0, residual: torch.Tensor | None = None):
        """x @ W (+ residual, added inside the matmul on CPU: one kernel instead of two)."""
        w = self.w[name][layer]
        if self._transposed:
            return x @ w if residual is None else torch.addmm(residual, x, w)
        y = F.linear(x, w)
        return y if residual is None else residual + y

    def _forward(self, tok: torch.Tensor, pos: torch.Tensor, length: int) -> torch.Tensor:
        """GPT.forward for one new token per row (the same math: rotary, QK-norm, ReLU², soft-cap), with per-row
        positions. tok, pos: (M,); attends over cache positions [0, length). A step is ~20 kernels per layer,
        each a few microseconds on a CPU, so per-step work is hoisted out of the layer loop and ops are fused
        where torch has a fused form (addmm, baddbmm, roll for the rotary halves)."""
        model, c = self.model, self.config
        m = tok.size(0)
        h, hkv, d = c.n_head, c.n_kv_head, c.head_dim
        group = h // hkv  # query heads per kv head (GQA): head j*group + g reads kv head j
        cos = model.cos[pos].to(self.dtype)[:, None, :]  # (M, 1, D/2): broadcast over heads
        sin = model.sin[pos].to(self.dtype)[:, None, :]
        # rotary as x·cos2 + roll(x)·sin2: roll swaps the halves, the sign lives in sin2; the same products and
        # sums as gpt.apply_rotary (x1·cos − x2·sin, x1·sin + x2·cos), so the same numbers
        cos2, sin2 = torch.cat([cos, cos], dim=-1), torch.cat([-sin, sin], dim=-1)
        rows = torch.arange(m, device=self.device)
        visible = torch.arange(length, device=self.device)[None, :] <= pos[:, None]  # (M, L)
        mask = torch.zeros(m, hkv, 1, length, device=self.device, dtype=self.dtype)
        mask.masked_fill_(~visible[:, None, None, :], float("-inf"))
        mask = mask.view(m * hkv, 1, length)  # added inside the attention matmul (baddbmm)
        x = norm(model.transformer.wte(tok).to(self.dtype))  # (M, C)
        nqk, scale = (h + hkv) * d, d ** -0.5
        for layer in range(c.n_layer):
            qkv = self._linear(norm(x), "qkv", layer)  # (M, (H + 2·Hkv)·D)
            qk = qkv[:, :nqk].view(m, h + hkv, d)  # queries and keys get rotary + norm together
            v = qkv[:, nqk:].view(m, hkv, d)
            qk = norm(qk * cos2 + torch.roll(qk, d // 2, dims=-1) * sin2)
            q, k = qk[:, :h], qk[:, h:]
            self.k[layer, rows, :, pos] = k  # each row's new key at its own position
            self.v[layer, rows, :, pos] = v
            keys = self.k[layer, :m, :, :length].reshape(m * hkv, length, d)  # views: (M·Hkv, L, D)
            values = self.v[layer, :m, :, :length].reshape(m * hkv, length, d)
            scores = torch.baddbmm(mask, q.reshape(m * hkv, group, d), keys.transpose(1, 2), alpha=scale)
            y = torch.bmm(torch.softmax(scores, dim=-1), values).view(m, h * d)  # (M·Hkv, G, D) → (M, H·D)
            x = self._linear(y, "proj", layer, residual=x)
            x = self._linear(F.relu(self._linear(norm(x), "fc", layer)).square(), "fc_out", layer, residual=x)
        logits = self._linear(norm(x), "head")
        if logits.dtype != torch.float32:
            logits = logits.float()
        cap = c.softcap
        return cap * torch.tanh(logits / cap)  # as GPT.logits

    # --- exactness --------------------------------------------------------------------------------------

    @torch.inference_mode()
    def probe(self) -> dict:
        """Find the row counts (and whether length bucketing) give bit-identical rows on this machine.

        Random keys/values for `max_batch` sequences at random positions; the reference is all of them in
        one step over the whole context. Then, for each row count M, the last M sequences in reverse order
        (other rows than in the reference) run as a step of exactly M rows; M is kept when every row matches.
        Run it on the thread that decodes: the thread count is part of what kernels are chosen by."""
        c, r = self.config, self.max_batch
        span = min(self.capacity, PROBE_POSITIONS)
        g = torch.Generator(device="cpu").manual_seed(1234)
        shape = (c.n_layer, r, c.n_kv_head, span, c.head_dim)
        store_k = torch.randn(shape, generator=g).to(self.device, self.dtype)
        store_v = torch.randn(shape, generator=g).to(self.device, self.dtype)
        tok = torch.randint(0, c.vocab_size, (r,), generator=g).to(self.device)
        pos = torch.randint(0, span, (r,), generator=g).to(self.device)
        pos[0] = span - 1  # one long row, so shorter subsets round to shorter lengths

        def run(order: list[int], length: int | None) -> torch.Tensor:
            idx = torch.tensor(order, device=self.device)
            self.k[:, :len(order), :, :span] = store_k[:, idx]
            self.v[:, :len(order), :, :span] = store_v[:, idx]
            n = int(pos[idx].max()) + 1
            return self._forward(tok[idx], pos[idx], length or self._length(n)).clone()

        self.bucketed = False
        reference = run(list(range(r)), self.capacity)
        self.bucketed = True
        if not torch.equal(run(list(range(r)), None), reference):
            self.bucketed = False
        sizes = []
        for m in range(1, r + 1):
            order = list(range(r - 1, r - 1 - m, -1))
            if torch.equal(run(order, None), reference[order]):
                sizes.append(m)
        if r not in sizes:  # the full batch must reproduce itself; if not, nothing here is exact
            sizes.append(r)
        self.batch_sizes = sizes
        self.k.zero_()
        self.v.zero_()
        return {"batch_sizes": sizes, "length_buckets": self.bucketed}
