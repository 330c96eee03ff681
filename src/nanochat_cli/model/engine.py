"""Generation: KV-cache decoding, temperature/top-k sampling, N samples per prompt, and the calculator tool.

The prompt is prefilled once with batch 1; its cache is then copied into a batch-N cache, so N samples
cost one prefill, not N. Each step feeds one token per row (B, 1): on the cpu-tiny model that is ~10-20×
faster than re-running the whole sequence (`nanochat bench generate`). The cache is sized to prompt +
max_tokens (capped at the rotary table), memory 2·L·B·Hkv·T·D elements. When a row emits
python_start…python_end, the expression goes to `calculator.calculate` (an ast walker, never `eval`) and
the engine forces output_start, the result's tokens, output_end into that row; forced tokens carry mask 0.
A row stops at assistant_end or bos. It does not do beam search or batches of different prompts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

import torch

from nanochat_cli.model.calculator import calculate


def sample_next(logits: torch.Tensor, generator: torch.Generator | None, temperature: float,
                top_k: int | None) -> torch.Tensor:
    """One token id per row from fp32 logits (B, V): argmax at temperature 0, else softmax(logits/T)
    restricted to the top_k largest (top_k None or 0 = all)."""
    if temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    if top_k:
        k = min(top_k, logits.size(-1))
        vals, idx = torch.topk(logits, k, dim=-1)
        probs = torch.softmax(vals / temperature, dim=-1)
        return idx.gather(-1, torch.multinomial(probs, 1, generator=generator))
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


@dataclass
class _Row:
    """Per-sample state: tokens so far, tokens the tool forces next, the python expression being read."""
    tokens: list[int]
    forced: deque = field(default_factory=deque)
    in_python: bool = False
    python_tokens: list[int] = field(default_factory=list)
    done: bool = False


class Engine:
    """Generate from `model` (a GPT with the KVCache contract) with `tokenizer` (for specials and the tool)."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        sid = tokenizer.special_id
        self.bos = tokenizer.bos_id
        self.assistant_end = sid("<|assistant_end|>")
        self.python_start, self.python_end = sid("<|python_start|>"), sid("<|python_end|>")
        self.output_start, self.output_end = sid("<|output_start|>"), sid("<|output_end|>")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _max_positions(self) -> int:
        return int(self.model.cos.size(0)) if hasattr(self.model, "cos") else self.model.config.seq_len

    def _new_cache(self, batch: int, positions: int):
        from nanochat_cli.model.gpt import KVCache

        c = self.model.config
        return KVCache(batch, positions, c.n_layer, c.n_kv_head, c.head_dim, self.device,
                       getattr(self.model, "compute_dtype", torch.float32))

    @torch.no_grad()
    def generate(self, tokens: list[int], num_samples: int = 1, max_tokens: int = 256, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 42, use_cache: bool = True, stop: bool = True
                 ) -> Iterator[tuple[list[int], list[int]]]:
        """Yield, per step, (token per sample, mask per sample): mask 1 = sampled, 0 = forced by the tool.
        Finished rows keep yielding their last token until every row is done or max_tokens is reached.
        `stop=False` ignores assistant_end/bos (benchmarks need a fixed number of tokens)."""
        if not tokens:
            raise ValueError("generate needs at least one prompt token (e.g. bos)")
        was_training = self.model.training
        self.model.eval()
        try:
            yield from self._generate(list(tokens), num_samples, max_tokens, temperature, top_k, seed, use_cache, stop)
        finally:
            self.model.train(was_training)

    def _generate(self, tokens, num_samples, max_tokens, temperature, top_k, seed, use_cache, stop):
        device = self.device
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        vocab = self.tokenizer.vocab_size
        limit = self._max_positions()
        max_tokens = max(0, min(max_tokens, limit - len(tokens)))
        if max_tokens == 0:
            return
        rows = [_Row(tokens=list(tokens)) for _ in range(num_samples)]

        cache = None
        if use_cache:
            # Prefill once with batch 1, then copy the prompt's keys/values into the batch-N cache.
            total = len(tokens) + max_tokens
            prefill = self._new_cache(1, len(tokens))
            logits = self.model(torch.tensor([tokens], dtype=torch.long, device=device), kv_cache=prefill)
            cache = self._new_cache(num_samples, total)
            cache.prefill_from(prefill)
            del prefill
            logits = logits[:, -1, :vocab].expand(num_samples, -1)
        else:
            seqs = torch.tensor([tokens] * num_samples, dtype=torch.long, device=device)  # (N, T)
            logits = self.model(seqs[:1])[:, -1, :vocab].expand(num_samples, -1)

        for _ in range(max_tokens):
            sampled = sample_next(logits, gen, temperature, top_k)[:, 0].tolist()
            column, masks = [], []
            for row, tok in zip(rows, sampled):
                if row.done:  # keeps the batch rectangular; its token is ignored by callers
                    column.append(row.tokens[-1])
                    masks.append(0)
                    continue
                if row.forced:
                    tok, mask = row.forced.popleft(), 0
                else:
                    mask = 1
                row.tokens.append(tok)
                column.append(tok)
                masks.append(mask)
                self._tool_step(row, tok)
                if stop and tok in (self.assistant_end, self.bos):
                    row.done = True
            yield column, masks
            if all(r.done for r in rows):
                return
            x = torch.tensor(column, dtype=torch.long, device=device).view(num_samples, 1)
            if cache is not None:
                logits = self.model(x, kv_cache=cache)[:, -1, :vocab]
            else:
                # No cache: re-run every row's whole sequence (the reference the cache must reproduce).
                seqs = torch.cat([seqs, x], dim=1)
                logits = self.model(seqs)[:, -1, :vocab]

    def _tool_step(self, row: _Row, tok: int) -> None:
        """Track python_start…python_end; at python_end queue output_start, result, output_end."""
        if tok == self.python_start:
            row.in_python, row.python_tokens = True, []
        elif tok == self.python_end and row.in_python:
            row.in_python = False
            result = calculate(self.tokenizer.decode(row.python_tokens))
            if result is not None:
                row.forced.extend([self.output_start, *self.tokenizer.encode(result), self.output_end])
        elif row.in_python:
            row.python_tokens.append(tok)

    def generate_batch(self, tokens: list[int], num_samples: int = 1, **kw) -> tuple[list[list[int]], list[list[int]]]:
        """All samples to completion: (token lists incl. the prompt, masks), each cut after its
        assistant_end/bos (that token is not included)."""
        results = [list(tokens) for _ in range(num_samples)]
        masks = [[0] * len(tokens) for _ in range(num_samples)]
        done = [False] * num_samples
        for column, mask_col in self.generate(tokens, num_samples, **kw):
            for i, (t, m) in enumerate(zip(column, mask_col)):
                if done[i]:
                    continue
                if t in (self.assistant_end, self.bos):
                    done[i] = True
                    continue
                results[i].append(t)
                masks[i].append(m)
            if all(done):
                break
        return results, masks
