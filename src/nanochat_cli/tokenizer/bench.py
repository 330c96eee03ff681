"""`nanochat bench tokenizer`: tokenizer training seconds on the cpu-tiny corpus and vocab, encode throughput of our
BPE vs tiktoken's GPT-2 on the same text, and the dataloader's tokens/s.

Everything runs in a scratch home (the embedded corpus is rebuilt there, ~5 s, so the user's home is never
touched and the figure is for the cpu-tiny corpus whatever the profile). Encode rounds alternate ours/gpt2 and
report the best of each, per wall second and per CPU second of the encoding thread (robust when other processes
share the cores): single-thread `encode_ordinary` on one ~0.8 MB text, and `encode_batch` over its documents
with the default thread count. Figures are measured, never asserted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace


def _mb_per_s(fn, n_bytes: int) -> tuple[float, float]:
    """(MB per wall second, MB per CPU second of this thread). tiktoken's single-text encode runs in the calling
    thread, so the second figure is what the code costs even when other processes share the cores."""
    c0, t0 = time.thread_time(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    return n_bytes / 1e6 / wall, n_bytes / 1e6 / max(cpu, 1e-9)


def bench_tokenizer(rounds: int = 7, loader_seconds: float = 3.0, progress=None) -> dict:
    from nanochat_cli.config_sources import load_config
    from nanochat_cli.data.embedded import ensure_embedded_corpus
    from nanochat_cli.data.shards import first_row_group_text, iter_texts
    from nanochat_cli.paths import Paths
    from nanochat_cli.tokenizer.bpe import BPETokenizer, train_ranks
    from nanochat_cli.tokenizer.compare import reference_encodings

    tiny = load_config(profile="cpu-tiny", environ={}).config
    scratch = Path(tempfile.mkdtemp(prefix="nanochat-bench-tok-"))
    try:
        say = progress or (lambda _msg: None)
        say("building the embedded corpus in a scratch home…")
        shards = ensure_embedded_corpus(SimpleNamespace(home=scratch))
        train_files, val_file = shards[:-1], shards[-1]
        t = tiny.tokenizer
        say(f"training the cpu-tiny tokenizer ({t.vocab_size:,} tokens, up to {t.train_chars:,} chars)…")
        chars = {"n": 0}

        def texts():
            for text in iter_texts(train_files, t.train_chars, t.doc_cap):
                chars["n"] += len(text)
                yield text

        cpu0, t0 = time.process_time(), time.perf_counter()
        ranks = train_ranks(texts(), t.vocab_size)
        train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
        ours = BPETokenizer(ranks)
        gpt2 = reference_encodings(Paths(scratch))["gpt2"]

        say("encode throughput, ours vs tiktoken gpt2 (alternating rounds)…")
        text = first_row_group_text(val_file) + "\n" + first_row_group_text(train_files[0])
        n_bytes = len(text.encode("utf-8"))
        docs = text.split("\n\n")
        ours_1, gpt2_1, ours_c, gpt2_c, ours_b, gpt2_b = [], [], [], [], [], []
        for _ in range(rounds):
            wall, cpu = _mb_per_s(lambda: ours.encoding.encode_ordinary(text), n_bytes)
            ours_1.append(wall), ours_c.append(cpu)
            wall, cpu = _mb_per_s(lambda: gpt2.encode_ordinary(text), n_bytes)
            gpt2_1.append(wall), gpt2_c.append(cpu)
            ours_b.append(_mb_per_s(lambda: ours.encode_batch(docs), n_bytes)[0])
            gpt2_b.append(_mb_per_s(lambda: gpt2.encode_ordinary_batch(docs), n_bytes)[0])

        loader = _loader_throughput(train_files, ours, tiny, loader_seconds, say)
        return {
            "corpus": "embedded (cpu-tiny)",
            "cpu_count": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "train_seconds": round(train_s, 2),
            "train_cpu_seconds": round(train_cpu_s, 2),
            "train_chars": chars["n"],
            "vocab_size": ours.vocab_size,
            "encode_text_bytes": n_bytes,
            "encode_mb_per_s": round(max(ours_1), 2),
            "encode_mb_per_s_gpt2": round(max(gpt2_1), 2),
            "encode_ratio_vs_gpt2": round(max(ours_1) / max(gpt2_1), 3),
            "encode_cpu_mb_per_s": round(max(ours_c), 2),
            "encode_cpu_mb_per_s_gpt2": round(max(gpt2_c), 2),
            "encode_cpu_ratio_vs_gpt2": round(max(ours_c) / max(gpt2_c), 3),
            "encode_batch_mb_per_s": round(max(ours_b), 2),
            "encode_batch_mb_per_s_gpt2": round(max(gpt2_b), 2),
            "encode_batch_ratio_vs_gpt2": round(max(ours_b) / max(gpt2_b), 3),
            "encode_rounds": rounds,
            **loader,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _loader_throughput(files, tokenizer, cfg, seconds: float, say) -> dict:
    from nanochat_cli.data.loader import measure_loader_throughput

    say(f"dataloader tokens/s ({seconds:.0f} s, batch {cfg.train.device_batch_size} × {cfg.model.seq_len})…")
    r = measure_loader_throughput(files, tokenizer, cfg.train.device_batch_size, cfg.model.seq_len, seconds=seconds)
    return {"loader_tokens_per_s": r["tokens_per_s"], "loader_batch_size": r["batch_size"],
            "loader_seq_len": r["seq_len"]}
