"""Generation: prefill the prompt once into a KV cache, then one token per step.

With a cache a new token costs one position of attention and matmuls instead of re-running the whole
prefix, so 256 new tokens after a short prompt run many times faster (measured in `nanochat bench
generate`). Several samples of one prompt share its prefill (the cache is copied, not recomputed).
Tool use: when the model closes <|python_start|>…<|python_end|>, the expression goes to the safe
calculator and its result is forced as <|output_start|>result<|output_end|> before sampling resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from nanochat_cli.model.calculator import calculate
from nanochat_cli.model.gpt import GPT, KVCache
from nanochat_cli.tokenizer.special import TOOL_TOKENS, reply_stop_ids, special_ids


@dataclass
class GenerationConfig:
    max_tokens: int = 256
    temperature: float = 0.6
    top_k: int = 50
    seed: int = 42


def sample_next(logits: torch.Tensor, temperature: float, top_k: int, generator: torch.Generator | None) -> torch.Tensor:
    """logits (B, V) → token ids (B, 1). temperature 0 = greedy."""
    if temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k and top_k < logits.size(-1):
        vals, idx = torch.topk(logits, top_k, dim=-1)
        probs = torch.softmax(vals, dim=-1)
        choice = torch.multinomial(probs, 1, generator=generator)
        return idx.gather(-1, choice)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)


class Engine:
    def __init__(self, model: GPT, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self._special = special_ids(tokenizer, TOOL_TOKENS)
        self.stop_ids = reply_stop_ids(tokenizer)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def _new_cache(self, batch: int, length: int) -> KVCache:
        c = self.model.config
        # Keys and values are stored in the dtype the model computes in (bf16 when training prepared it so).
        dtype = getattr(self.model, "compute_dtype", next(self.model.parameters()).dtype)
        return KVCache(batch, length, c.n_layer, c.n_kv_head, c.head_dim, self.device, dtype)

    @torch.inference_mode()
    def generate(self, prompt: list[int], num_samples: int = 1, gen: GenerationConfig | None = None,
                 use_cache: bool = True) -> Iterator[list[int]]:
        """Yield, per step, one new token id for each of `num_samples` rows (stopped rows repeat their last
        token and are marked done in `self.done`). Stops when all rows stop or max_tokens is reached."""
        gen = gen or GenerationConfig()
        seq_cap = self.model.config.seq_len
        if len(prompt) >= seq_cap:
            raise ValueError(f"prompt of {len(prompt)} tokens does not fit the model's {seq_cap}-token context")
        max_new = min(gen.max_tokens, seq_cap - len(prompt))
        generator = torch.Generator(device=self.device).manual_seed(gen.seed) if gen.temperature > 0 else None
        rows = [list(prompt) for _ in range(num_samples)]
        forced: list[list[int]] = [[] for _ in range(num_samples)]
        in_python = [None] * num_samples  # collected python tokens while inside a tool call
        self.done = [False] * num_samples
        ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
        if use_cache:
            first = self._new_cache(1, len(prompt) + max_new)
            logits = self.model(ids, kv_cache=first)[:, -1, :]
            if num_samples == 1:
                cache = first
            else:  # share the prompt's prefill: copy its keys/values into every row
                cache = self._new_cache(num_samples, len(prompt) + max_new)
                cache.prefill_from(first)
            logits = logits.expand(num_samples, -1)
        else:
            cache = None
            logits = self.model(ids)[:, -1, :].expand(num_samples, -1)
        for _ in range(max_new):
            sampled = sample_next(logits.float(), gen.temperature, gen.top_k, generator).view(-1).tolist()
            step = []
            self.forced_now = [bool(f) for f in forced]  # which rows' token of this step the calculator forces
            for i in range(num_samples):
                tok = forced[i].pop(0) if forced[i] else sampled[i]
                if self.done[i]:
                    tok = rows[i][-1]
                else:
                    self._track_tool(i, tok, in_python, forced)
                    if tok in self.stop_ids:
                        self.done[i] = True
                rows[i].append(tok)
                step.append(tok)
            yield step
            if all(self.done):
                return
            nxt = torch.tensor([[t] for t in step], dtype=torch.long, device=self.device)
            if cache is not None:
                logits = self.model(nxt, kv_cache=cache)[:, -1, :]
            else:
                logits = self.model(torch.tensor(rows, dtype=torch.long, device=self.device))[:, -1, :]

    def _track_tool(self, i: int, tok: int, in_python: list, forced: list[list[int]]) -> None:
        ps, pe = self._special.get("<|python_start|>"), self._special.get("<|python_end|>")
        os_, oe = self._special.get("<|output_start|>"), self._special.get("<|output_end|>")
        if ps is None or pe is None:
            return
        if tok == ps:
            in_python[i] = []
        elif tok == pe and in_python[i] is not None:
            result = calculate(self.tokenizer.decode(in_python[i]))
            in_python[i] = None
            if result is not None and os_ is not None and oe is not None:
                forced[i].extend([os_, *self.tokenizer.encode(result), oe])
        elif in_python[i] is not None:
            in_python[i].append(tok)

    def generate_batch(self, prompt: list[int], num_samples: int = 1, gen: GenerationConfig | None = None,
                       use_cache: bool = True) -> list[list[int]]:
        """All new tokens per sample, each cut after its stop token."""
        return self.generate_with_masks(prompt, num_samples, gen, use_cache)[0]

    def generate_with_masks(self, prompt: list[int], num_samples: int = 1, gen: GenerationConfig | None = None,
                            use_cache: bool = True) -> tuple[list[list[int]], list[list[int]]]:
        """(tokens, masks): all new tokens per sample, each cut after its stop token, and per token 1 if the
        model sampled it, 0 if the calculator forced it (RL learns only from what the model chose)."""
        out: list[list[int]] = [[] for _ in range(num_samples)]
        masks: list[list[int]] = [[] for _ in range(num_samples)]
        finished = [False] * num_samples
        for step in self.generate(prompt, num_samples, gen, use_cache):
            for i, tok in enumerate(step):
                if not finished[i]:
                    out[i].append(tok)
                    masks[i].append(0 if self.forced_now[i] else 1)
                    finished[i] = tok in self.stop_ids
        return out, masks
