"""`nanochat bench ...`: speed figures as JSON (never asserted in tests)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import CompileOpt, DeviceOpt, DtypeOpt, JsonOpt

app = typer.Typer(help="Measure speed: training step, tokenizer, generation, serving, learn step.", no_args_is_help=True)


@app.command("train", epilog="Examples: `nanochat bench train --json`; `nanochat bench train --compile off "
                              "--dtype float32`; `nanochat bench train --depth 6 --seq-len 512 --steps 5`.")
def train(
    ctx: typer.Context,
    depth: Annotated[int, typer.Option(help="Transformer blocks; width = 64 x depth.")] = 4,
    seq_len: Annotated[int, typer.Option("--seq-len", help="Tokens per sequence.")] = 256,
    batch: Annotated[int, typer.Option(help="Sequences per step (device batch).")] = 8,
    vocab_size: Annotated[int, typer.Option("--vocab-size", help="Vocabulary size.")] = 8192,
    head_dim: Annotated[int, typer.Option("--head-dim", help="Attention head dimension.")] = 64,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
    steps: Annotated[int, typer.Option(help="Timed steps.")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up steps (they include compiling).")] = 3,
    dtype: DtypeOpt = None,
    compile: CompileOpt = None,
    device: DeviceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Training-step throughput at the reference config (d4, width 256, seq 256, vocab 8192, batch 8).

    Compiles (--compile auto) unless --compile off; the dtype follows the CPU (bf16 only where it is fast)."""
    from nanochat_cli.cli import output
    from nanochat_cli.cli.options import build_config
    from nanochat_cli.errors import UsageError
    from nanochat_cli.model.bench import BenchSpec, bench_flags, bench_train

    for name, value in (("depth", depth), ("seq-len", seq_len), ("batch", batch), ("threads", threads),
                        ("steps", steps), ("head-dim", head_dim)):
        if value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")
    if warmup < 0:
        raise UsageError(f"--warmup must be 0 or more, got {warmup}")
    spec = BenchSpec(depth=depth, head_dim=head_dim, seq_len=seq_len, vocab_size=vocab_size, batch=batch,
                     threads=threads, steps=steps, warmup=warmup)
    # The reference config, not the profile's: compile unless asked not to (cpu-tiny turns it off to save
    # the cold compile in a short run; a bench times warm steps, so it measures the fastest setting).
    flags = {**bench_flags(spec), "train.dtype": dtype, "train.compile": compile or "auto", "train.device": device}
    cfg = build_config(ctx, None, None, flags).config
    result = bench_train(cfg, spec, progress=output.info)
    if json:
        output.emit_json(result)
        return
    output.table("bench train", ["metric", "value"],
                 [(k, v) for k, v in result.items() if k != "config"] + list(result["config"].items()))


@app.command("tokenizer")
def tokenizer(json: JsonOpt = False) -> None:
    """Tokenizer training time (cpu-tiny corpus and vocab), encode MB/s vs tiktoken gpt2, dataloader tokens/s."""
    from nanochat_cli.cli import output
    from nanochat_cli.tokenizer.bench import bench_tokenizer

    result = bench_tokenizer(progress=output.info)
    if json:
        output.emit_json(result)
        return
    output.table("bench tokenizer", ["figure", "value"], sorted(result.items()))


@app.command("generate")
def generate(json: JsonOpt = False,
             new_tokens: int = typer.Option(256, "--new-tokens", min=1, max=4096, help="Tokens generated per run."),
             ) -> None:
    """Generation tokens/s with and without the KV cache, time to first token."""
    from nanochat_cli.cli import output
    from nanochat_cli.model.bench_generate import run_bench

    res = run_bench(new_tokens=new_tokens)
    if json:
        output.emit_json(res)
        return
    for name, m in res["models"].items():
        output.result(f"{name}: cached {m['cached']['tok_per_s']:.0f} tok/s (first token "
                      f"{m['cached']['first_token_ms']:.0f} ms), uncached {m['uncached']['tok_per_s']:.0f} tok/s, "
                      f"speedup {m['speedup']:.1f}x")


@app.command("serve", epilog="Examples: `nanochat bench serve --json`; `nanochat bench serve --shape d4 --rounds 5`.")
def serve(json: JsonOpt = False,
          shape: Annotated[Optional[list[str]], typer.Option(
              "--shape", help="cpu-tiny or d4 (repeatable; default both).")] = None,
          new_tokens: int = typer.Option(128, "--new-tokens", min=1, max=4096, help="Tokens per request."),
          rounds: int = typer.Option(3, "--rounds", min=1, max=50, help="Interleaved rounds (figures are medians)."),
          max_batch: int = typer.Option(8, "--max-batch", min=1, max=256, help="The server's --max-batch."),
          threads: Optional[int] = typer.Option(None, "--threads", min=1, help="The server's --threads "
                                                "(default: its own default)."),
          ) -> None:
    """Serving throughput of `nanochat serve`: one stream vs 8 concurrent, time to first token."""
    from nanochat_cli.cli import output
    from nanochat_cli.cli.serve import require_server_stack
    from nanochat_cli.errors import UsageError
    from nanochat_cli.serve.bench import run_bench, shapes

    require_server_stack()
    known = shapes()
    for name in shape or []:
        if name not in known:
            raise UsageError(f"unknown --shape {name!r}", f"choose from {', '.join(known)}")
    res = run_bench(shape, new_tokens=new_tokens, rounds=rounds, max_batch=max_batch, threads=threads,
                    progress=output.info)
    if json:
        output.emit_json(res)
        return
    for name, m in res["shapes"].items():
        output.result(f"{name}: one stream {m['single_tok_per_s']:.0f} tok/s (chat engine "
                      f"{m['chat_engine_tok_per_s']:.0f}), 8 streams {m['batch8_tok_per_s']:.0f} tok/s, speedup "
                      f"{m['speedup_8']:.1f}x, first token p50 {m['ttft_ms_p50']:.0f} ms / p95 {m['ttft_ms_p95']:.0f} ms")


@app.command("learn")
def learn(json: JsonOpt = False,
          repeats: int = typer.Option(3, "--repeats", min=1, max=20, help="Runs per measurement (median).")) -> None:
    """Time of one `learn step` in a fresh process (target: under 3 s on 2 cores)."""
    from nanochat_cli.cli import output
    from nanochat_cli.learn.timing import bench_step

    res = bench_step(repeats)
    if json:
        output.emit_json(res)
        return
    output.result(f"learn step: {res['learn_step_seconds']:.2f} s (runs {res['learn_step_runs']}, target "
                  f"< {res['target_seconds']:.0f} s on {res['cores']} cores); complete workspace: "
                  f"{res['complete_step_seconds']:.2f} s")
