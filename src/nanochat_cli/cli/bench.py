"""`nanochat bench ...`: speed figures as JSON (never asserted in tests)."""

from __future__ import annotations

import typer

from nanochat_cli.cli.options import JsonOpt
from nanochat_cli.errors import NotBuiltYet

app = typer.Typer(help="Measure speed: training step, tokenizer, generation, learn step.", no_args_is_help=True)


@app.command("train")
def train(json: JsonOpt = False) -> None:
    """Training-step throughput at the reference config (d4, width 256, seq 256, vocab 8192, batch 8)."""
    raise NotBuiltYet("bench train", 5)


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
def generate(json: JsonOpt = False) -> None:
    """Generation tokens/s with and without the KV cache, time to first token."""
    raise NotBuiltYet("bench generate", 7)


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
