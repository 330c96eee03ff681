"""`nanochat bench serve`: throughput of the real server, one stream against 8 concurrent ones.

For each shape (cpu-tiny: the default profile's model; d4: depth 4, width 256, vocab 8192) a random-weight
checkpoint goes into a temporary home and `nanochat serve` runs on it on 127.0.0.1 (speed does not depend on
the weights). A client here streams chat completions with `ignore_eos`, so every request produces exactly
`new_tokens` tokens. Rounds interleave: what `nanochat chat`'s engine decodes in this process, one request
alone, 8 requests at once; each figure is the median over rounds (a shared machine drifts; interleaving keeps
the ratio honest). Time to first token is measured per request, from sending it to its first streamed event.
Nothing is asserted: the figures are printed (docs/reference/bench.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

D4 = {"depth": 4, "width": 256, "heads": 4, "vocab": 8192, "seq_len": 512}
PROMPTS = ["Tell me about the number {}.", "Why is the sky blue? ({})", "Write a short poem about rivers, take {}.",
           "What is {} plus 17?", "List three uses of copper (case {}).", "How do birds fly? Answer {}.",
           "Summarise the plot of a play in {} sentences.", "Explain rain to a child, version {}."]


def shapes() -> dict[str, dict]:
    from nanochat_cli.config_sources import load_config

    m = load_config(profile="cpu-tiny", environ={}).config.model
    tiny = {"depth": m.depth, "width": m.depth * m.aspect_ratio, "heads": m.depth * m.aspect_ratio // m.head_dim,
            "vocab": load_config(profile="cpu-tiny", environ={}).config.tokenizer.vocab_size, "seq_len": m.seq_len}
    return {"cpu-tiny": tiny, "d4": D4}


def cpu_info() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"model name\s*:\s*(.*)", text)
    return {"cpu": name.group(1).strip() if name else "unknown", "cores": len(os.sched_getaffinity(0)),
            "avx512_bf16": "avx512_bf16" in text, "avx2": " avx2" in text}


def _save_random_checkpoint(home: Path, shape: dict):
    from dataclasses import asdict

    import torch

    from nanochat_cli.checkpoint import save_checkpoint
    from nanochat_cli.model.gpt import GPT, GPTConfig
    from nanochat_cli.paths import Paths
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=shape["vocab"], n_layer=shape["depth"], n_embd=shape["width"],
                          n_head=shape["heads"], n_kv_head=shape["heads"], seq_len=shape["seq_len"]))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    tok = ByteTokenizer()  # the model's vocab is larger: the server samples only ids the tokenizer has
    meta = {"phase": "sft", "run_id": "bench", "model_config": asdict(model.config), "num_iterations": 1,
            "tokenizer": {"kind": "byte", "vocab_size": tok.vocab_size, "fingerprint": None}, "metrics": {}}
    save_checkpoint(Paths(home).run_checkpoints("bench", "sft"), 1, model.state_dict(), [], meta)
    return model


# --- a small streaming HTTP/1.1 client (stdlib asyncio: cheap enough not to be what is measured) -----------

async def _stream_chat(host: str, port: int, body: dict) -> dict:
    payload = json.dumps(body).encode()
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (host.encode(), port, len(payload)) + payload)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    if status != 200:
        raise RuntimeError(f"server answered {status}: {(await reader.read())[:300]!r}")
    first, usage, buf = None, None, b""
    chunked = headers.get("transfer-encoding") == "chunked"
    while True:
        if chunked:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                break
            data = await reader.readexactly(size + 2)
            data = data[:-2]
        else:
            data = await reader.read(65536)
            if not data:
                break
        buf += data
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            if not event.startswith(b"data: "):
                continue
            if first is None:
                first = time.perf_counter() - t0
            # Only the events that matter are parsed: the client shares the CPU with the server it measures.
            if event.startswith(b'data: {"error"'):
                raise RuntimeError(f"server error: {event[6:300]!r}")
            if b'"usage": {' in event:
                usage = json.loads(event[6:])["usage"]
    writer.close()
    total = time.perf_counter() - t0
    return {"ttft": first, "seconds": total, "tokens": usage["completion_tokens"] if usage else 0}


async def _measure_round(host, port, new_tokens: int, concurrency: int, r: int) -> dict:
    def body(i: int) -> dict:
        return {"messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)].format(r * concurrency + i)}],
                "max_tokens": new_tokens, "temperature": 0, "ignore_eos": True, "stream": True,
                "stream_options": {"include_usage": True}}

    single = await _stream_chat(host, port, body(0))
    t0 = time.perf_counter()
    batch = await asyncio.gather(*[_stream_chat(host, port, body(i)) for i in range(concurrency)])
    wall = time.perf_counter() - t0
    return {"single_tok_per_s": single["tokens"] / single["seconds"], "single_ttft": single["ttft"],
            "batch_tok_per_s": sum(b["tokens"] for b in batch) / wall, "batch_ttfts": [b["ttft"] for b in batch],
            "tokens_ok": single["tokens"] == new_tokens and all(b["tokens"] == new_tokens for b in batch)}


def _engine_tok_per_s(model, new_tokens: int) -> float:
    """What `nanochat chat` decodes at: its Engine, one stream, in this process (the server sits idle)."""
    from nanochat_cli.model.engine import Engine, GenerationConfig

    class _NoSpecials:  # nothing stops it early: the same fixed length as the server's requests
        def special_id(self, name):
            raise KeyError(name)

    engine = Engine(model, _NoSpecials())
    t0 = time.perf_counter()
    gen = GenerationConfig(max_tokens=new_tokens, temperature=0.0, top_k=0)
    n = sum(1 for _ in engine.generate(list(range(24)), 1, gen))
    return n / (time.perf_counter() - t0)


def _start_server(home: Path, max_batch: int, threads: int | None) -> tuple[subprocess.Popen, str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANOCHAT_")}
    env["NANOCHAT_HOME"] = str(home)
    cmd = [sys.executable, "-m", "nanochat_cli", "serve", "-i", "sft", "--port", "0", "--max-batch", str(max_batch),
           "--max-queue", "64"] + (["--threads", str(threads)] if threads else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    seen = []
    for line in proc.stderr:
        seen.append(line.rstrip())
        m = re.search(r"serving \S+ at http://([\d.]+):(\d+)/", line)
        if m:
            # keep reading its log in the background so a full pipe never blocks the server
            import threading

            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1), int(m.group(2))
    raise RuntimeError("the server did not start: " + " | ".join(seen[-5:]))


def _stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _health(host: str, port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=10) as r:
        return json.loads(r.read())


def bench_shape(name: str, shape: dict, new_tokens: int, rounds: int, concurrency: int, max_batch: int,
                threads: int | None, progress: Callable[[str], None]) -> dict:
    import torch

    with tempfile.TemporaryDirectory(prefix="nanochat-bench-serve.") as tmp:
        model = _save_random_checkpoint(Path(tmp), shape).eval()
        progress(f"bench serve: {name} (depth {shape['depth']}, width {shape['width']}, vocab {shape['vocab']}): "
                 "starting the server")
        proc, host, port = _start_server(Path(tmp), max_batch, threads)
        try:
            decode = _health(host, port).get("decode", {})
            torch.set_num_threads(decode.get("threads") or threads or 1)
            tokens = min(new_tokens, shape["seq_len"] - 64)
            asyncio.run(_measure_round(host, port, 8, concurrency, -1))  # warm-up: allocator, kernels, connections
            _engine_tok_per_s(model, 8)
            per_round = []
            for r in range(rounds):
                engine = _engine_tok_per_s(model, tokens)
                res = asyncio.run(_measure_round(host, port, tokens, concurrency, r))
                res["engine_tok_per_s"] = engine
                per_round.append(res)
                progress(f"  round {r + 1}/{rounds}: chat engine {engine:.0f} tok/s, one stream "
                         f"{res['single_tok_per_s']:.0f} tok/s, {concurrency} streams {res['batch_tok_per_s']:.0f} "
                         f"tok/s")
        finally:
            _stop_server(proc)
    med = lambda key: statistics.median(r[key] for r in per_round)  # noqa: E731
    ttfts = sorted(t * 1000 for r in per_round for t in r["batch_ttfts"])
    single, batch = med("single_tok_per_s"), med("batch_tok_per_s")
    return {
        "single_tok_per_s": round(single, 1),
        f"batch{concurrency}_tok_per_s": round(batch, 1),
        f"speedup_{concurrency}": round(batch / single, 2),
        "ttft_ms_p50": round(_percentile(ttfts, 50), 1),
        "ttft_ms_p95": round(_percentile(ttfts, 95), 1),
        "single_ttft_ms": round(med("single_ttft") * 1000, 1),
        "chat_engine_tok_per_s": round(med("engine_tok_per_s"), 1),
        "single_vs_chat": round(single / med("engine_tok_per_s"), 2),
        "round_speedups": [round(r["batch_tok_per_s"] / r["single_tok_per_s"], 2) for r in per_round],
        "all_requests_full_length": all(r["tokens_ok"] for r in per_round),
        "shape": shape, "new_tokens": tokens, "decode": decode,
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def run_bench(names: list[str] | None = None, new_tokens: int = 128, rounds: int = 3, concurrency: int = 8,
              max_batch: int = 8, threads: int | None = None, progress: Callable[[str], None] = lambda s: None) -> dict:
    import torch

    known = shapes()
    results = {n: bench_shape(n, known[n], new_tokens, rounds, concurrency, max_batch, threads, progress)
               for n in (names or list(known))}
    key = f"speedup_{concurrency}"
    limiting = min(results, key=lambda n: results[n][key])
    top = results[limiting]
    # The headline figures come from the shape with the lowest speedup, so they agree with each other.
    return {key: top[key], "single_tok_per_s": top["single_tok_per_s"],
            f"batch{concurrency}_tok_per_s": top[f"batch{concurrency}_tok_per_s"],
            "ttft_ms_p50": top["ttft_ms_p50"], "ttft_ms_p95": top["ttft_ms_p95"], "limiting_shape": limiting,
            "concurrency": concurrency, "rounds": rounds, "torch": torch.__version__, **cpu_info(),
            "shapes": results}
