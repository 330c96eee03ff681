"""`nanochat tokenizer train|eval`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config

app = typer.Typer(help="Train and evaluate the BPE tokenizer.", no_args_is_help=True)

TRAIN_EPILOG = """Examples:

  nanochat tokenizer train                        # cpu-tiny: 4,096 tokens on the embedded corpus (seconds)

  nanochat tokenizer train --vocab-size 8192 --train-chars 5000000

  nanochat tokenizer train --profile a100x8       # 65,536 tokens on 2 B chars of fineweb-edu"""

EVAL_EPILOG = """Examples:

  nanochat tokenizer eval

  nanochat tokenizer eval --json"""


@app.command("train", epilog=TRAIN_EPILOG)
def train(ctx: typer.Context,
          vocab_size: Annotated[Optional[int], typer.Option(
              "--vocab-size", help="Tokens incl. 256 bytes and 9 specials (tokenizer.vocab_size).")] = None,
          train_chars: Annotated[Optional[int], typer.Option(
              "--train-chars", help="Characters of the corpus to train on (tokenizer.train_chars).")] = None,
          doc_cap: Annotated[Optional[int], typer.Option(
              "--doc-cap", help="Longest document prefix read, in chars (tokenizer.doc_cap).")] = None,
          profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Train a BPE tokenizer on the configured corpus (builds the embedded corpus first if needed)."""
    resolved = build_config(ctx, profile, config, {"tokenizer.vocab_size": vocab_size,
                                                   "tokenizer.train_chars": train_chars, "tokenizer.doc_cap": doc_cap})
    from nanochat_cli.tokenizer.bpe import train_tokenizer

    result = train_tokenizer(resolved.config, progress=output.info)
    if json:
        output.emit_json(result)
        return
    output.result(f"trained a {result['vocab_size']:,}-token BPE on {result['train_chars']:,} chars "
                  f"({result['train_docs']:,} documents) in {result['seconds']:.1f} s → {result['dir']} "
                  f"(sha256 {result['sha256'][:12]})")


@app.command("eval", epilog=EVAL_EPILOG)
def eval_(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Compare compression (bytes/token) with GPT-2 and GPT-4 (cl100k), offline.

    The result is also saved as <home>/tokenizer/eval.json, which `nanochat report` shows for runs trained
    with this tokenizer."""
    resolved = build_config(ctx, profile, config)
    from nanochat_cli.paths import Paths, atomic_write_json
    from nanochat_cli.tokenizer.compare import compare_tokenizers

    report = compare_tokenizers(resolved.config)
    saved = Paths.of(resolved.config).tokenizer / "eval.json"
    try:
        atomic_write_json(saved, report)
        output.info(f"saved → {saved}")
    except OSError as e:  # the comparison itself succeeded; not being able to keep it is worth a line, not a failure
        output.info(f"warning: could not save {saved}: {e.strerror or e}")
    if json:
        output.emit_json(report)
        return
    names = report["tokenizers"]
    rows = []
    for row in report["texts"]:
        cells = [row["text"], f"{row['bytes']:,}"]
        for n in names:
            r = row["results"][n]
            cells.append(f"{r['tokens']:,} / {r['bytes_per_token']:.2f}")
        rows.append(cells)
    output.table("tokens / bytes per token (higher = better compression)", ["text", "bytes", *names], rows)
