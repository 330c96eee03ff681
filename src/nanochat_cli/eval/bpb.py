"""Bits per byte: the validation loss made independent of the tokenizer's vocabulary.

bpb = Σ loss over predicted tokens (nats) / (ln 2 · Σ UTF-8 bytes of those tokens); special tokens
count 0 bytes and are left out of both sums, targets of -1 are ignored. Byte lengths come from the
tokenizer once per vocabulary (65,536 decodes ≈ 0.1 s), cached on the tokenizer object. It evaluates
what it is given; choosing the validation data is the caller's job.
"""

from __future__ import annotations

import math

from nanochat_cli.tokenizer.special import SPECIAL_TOKENS


def token_byte_lengths(tokenizer):
    """int64 tensor (vocab_size,): UTF-8 bytes each token id stands for; 0 for special tokens."""
    import torch

    cached = getattr(tokenizer, "_nanochat_token_bytes", None)
    if cached is not None:
        return cached
    special = set()
    for name in SPECIAL_TOKENS:
        try:
            special.add(tokenizer.special_id(name))
        except (KeyError, ValueError):
            pass
    raw = getattr(tokenizer, "token_bytes", None)  # exact bytes, when the tokenizer can give them
    lengths = []
    for i in range(tokenizer.vocab_size):
        if i in special:
            lengths.append(0)
        elif callable(raw):
            lengths.append(len(raw(i)))
        elif i < 256 and tokenizer.__class__.__name__ == "ByteTokenizer":
            lengths.append(1)  # one raw byte; decoding it alone would give a 3-byte U+FFFD
        else:
            lengths.append(len(tokenizer.decode([i]).encode("utf-8")))
    out = torch.tensor(lengths, dtype=torch.int64)
    try:
        tokenizer._nanochat_token_bytes = out
    except AttributeError:
        pass
    return out


def evaluate_bpb(model, batches, token_bytes, device) -> float:
    """Bits per byte of `model` over `batches` of (inputs, targets); summed over all ranks when a
    process group is up. If any rank fails, every rank raises the same RuntimeError naming the failing
    ranks and their errors, after the same collectives, so a training loop that logs eval errors and goes
    on keeps every rank in step (a failure on one rank alone would otherwise leave the others waiting in
    this all_reduce while it reached the next gradient all_reduce), and rank 0's log shows the cause."""
    import torch
    import torch.distributed as tdist

    nats = torch.zeros((), dtype=torch.float64, device=device)
    nbytes = torch.zeros((), dtype=torch.int64, device=device)
    error = None
    was_training = model.training
    model.eval()
    try:
        token_bytes = token_bytes.to(device)
        with torch.no_grad():
            for x, y in batches:
                x, y = x.to(device), y.to(device)
                loss = model(x, y, loss_reduction="none").reshape(-1).double()
                y = y.reshape(-1)
                b = torch.where(y >= 0, token_bytes[y.clamp(min=0)], torch.zeros_like(y))
                nats += (loss * (b > 0)).sum()
                nbytes += b.sum()
    except Exception as e:  # noqa: BLE001 - re-raised below, after the other ranks have heard of it
        error = e
    finally:
        model.train(was_training)
    if tdist.is_available() and tdist.is_initialized():
        # One collective for the sums and the failure count (float64 holds byte counts exactly up to 2^53).
        packed = torch.stack([nats, nbytes.double(), torch.tensor(float(error is not None), dtype=torch.float64,
                                                                  device=device)])
        tdist.all_reduce(packed)
        if packed[2].item() > 0:  # every rank takes this branch: the gather below is collective too
            errors = [None] * tdist.get_world_size()
            tdist.all_gather_object(errors, None if error is None else f"{type(error).__name__}: {error}")
            where = "; ".join(f"rank {r}: {msg}" for r, msg in enumerate(errors) if msg is not None)
            raise RuntimeError(f"validation failed ({where}); skipped on every rank") from error
        nats, total_bytes = packed[0].item(), packed[1].item()
    else:
        nats, total_bytes = nats.item(), float(nbytes.item())
    if error is not None:
        raise error
    if total_bytes == 0:
        return float("nan")
    return nats / (math.log(2) * total_bytes)


def validation_batches(cfg, tokenizer, rank: int = 0, world_size: int = 1, tokens: int | None = None):
    """Batches of the validation shard (the last shard), `eval.bpb_tokens` tokens over all ranks."""
    from nanochat_cli.data.loader import TokenLoader
    from nanochat_cli.data.shards import list_shards

    _, val_file = list_shards(cfg)
    B, T = cfg.train.device_batch_size, cfg.model.seq_len
    steps = max(1, (tokens or cfg.eval.bpb_tokens) // (B * T * world_size))
    loader = TokenLoader([val_file], tokenizer, B, T, rank=rank, world_size=world_size)
    try:
        for _, batch in zip(range(steps), loader):
            yield batch
    finally:
        loader.close()


def run_bpb(cfg, source: str = "base", step: int | None = None, run: str | None = None,
            depth: int | None = None, progress=None) -> dict:
    """`nanochat eval bpb`: bits per byte of a checkpoint on the validation shard."""
    import time

    import torch

    from nanochat_cli.eval.runner import run_on_checkpoint

    def work(loaded, device, info):
        if device.type == "cuda":  # bf16 matmuls by explicit casts inside the model (model/gpt.py), as in training
            loaded.model.compute_dtype = torch.bfloat16
        t0 = time.time()
        bpb = evaluate_bpb(loaded.model, validation_batches(cfg, loaded.tokenizer, info.rank, info.world_size),
                           token_byte_lengths(loaded.tokenizer), device)
        return {"metric": "bpb", "bpb": bpb, "tokens": cfg.eval.bpb_tokens, "seconds": time.time() - t0}

    return run_on_checkpoint(cfg, source, "bpb", work, lambda r: {"val_bpb": r["bpb"]}, step=step, run=run,
                             depth=depth, progress=progress)
