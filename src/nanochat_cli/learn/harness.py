"""The fixed world every `learn step` runs in: a tiny model config, one batch of packaged text through
the byte-level tokenizer, fp32 on the CPU, fixed seeds.

Tiny on purpose: 2 layers of width 64, 4 heads, vocab 265 (256 bytes + 9 specials), 4 × 32 tokens.
One forward+backward of both models costs ~10 ms, so a `learn step` is dominated by importing torch
(~2 s of the 3 s budget on 2 cores); no tokenizer training, no `datasets`, no download, no compile.
The text is ~6 KB of the King James Bible (public domain) shipped in the package.
It does not train anything big: `nanochat train base --model` does that.
"""

from __future__ import annotations

from importlib import resources

import torch

from nanochat_cli.tokenizer.byte_level import ByteTokenizer

# The reference GPTConfig fields (HELPERS.md contract), at learn-mode size.
TINY = dict(vocab_size=ByteTokenizer().vocab_size, n_layer=2, n_embd=64, n_head=4, n_kv_head=4, seq_len=32)
BATCH = 4
SEED = 1337
CURVE_STEPS = 12


def setup_torch() -> None:
    """fp32 and ONE thread: at (4, 32, 64) a matmul is microseconds of work, and on a busy 2-core
    machine OpenMP threads waiting on each other made a step 5× slower (12 s vs 2.4 s measured)."""
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)


def corpus() -> str:
    return (resources.files("nanochat_cli.learn") / "corpus.txt").read_text(encoding="utf-8")


def batches(n: int, batch: int = BATCH, seq_len: int = TINY["seq_len"], seed: int = SEED):
    """`n` (inputs, targets) pairs of shape (batch, seq_len): windows of the corpus (BOS first), targets
    shifted by one — the same layout the real dataloader yields."""
    tok = ByteTokenizer()
    ids = torch.tensor(tok.encode(corpus(), prepend=tok.bos_id), dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        starts = torch.randint(0, len(ids) - seq_len - 1, (batch,), generator=g)
        rows = torch.stack([ids[s:s + seq_len + 1] for s in starts.tolist()])
        out.append((rows[:, :-1].contiguous(), rows[:, 1:].contiguous()))
    return out


def reference():
    """The reference model module (imported on first use: it is the one the learner is checked against)."""
    from nanochat_cli.model import gpt

    return gpt


def reference_model(seed: int = SEED):
    """The reference GPT at the tiny config, initialised by its own `init_weights` under `seed`."""
    ref = reference()
    torch.manual_seed(seed)
    model = ref.GPT(ref.GPTConfig(**TINY))
    torch.manual_seed(seed)
    model.init_weights()
    return model


@torch.no_grad()
def perturb(model, seed: int = SEED + 1):
    """Make the weights informative for checking: at the reference init the output projections are zero
    (every attention/MLP output is 0, so any bug there would pass) and the lm_head is ~0 (the softcap
    would be invisible). Every parameter gets seeded noise of about its own scale (at least 1/√fan_in);
    the lm_head gets std 1 so logits reach the softcap's range. Both models get the same weights."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if not p.is_floating_point():
            continue
        if p.dim() >= 2:
            scale = max(float(p.float().std()), p.shape[-1] ** -0.5)
        else:
            scale = 0.05
        noise = torch.randn(p.shape, generator=g, dtype=torch.float32) * scale
        if name.endswith("lm_head.weight"):
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            p.zero_()
        p.add_(noise.to(p.dtype))
    return model
