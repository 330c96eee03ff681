"""`nanochat tokenizer train|eval|list|use`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config

app = typer.Typer(help="Train, evaluate and list the BPE tokenizer versions (each kept; one is the default).",
                  no_args_is_help=True)

TRAIN_EPILOG = """Examples:

  nanochat tokenizer train                        # cpu-tiny: 4,096 tokens on the embedded corpus (seconds)

  nanochat tokenizer train --vocab-size 8192 --train-chars 5000000

  nanochat tokenizer train --profile a100x8       # 65,536 tokens on 2 B chars of fineweb-edu

  nanochat tokenizer train --if-missing           # keep a default of the configured size (jobs, reruns)"""

EVAL_EPILOG = """Examples:

  nanochat tokenizer eval

  nanochat tokenizer eval --json"""

LIST_EPILOG = """Examples:

  nanochat tokenizer list

  nanochat tokenizer list --json"""

USE_EPILOG = """Examples:

  nanochat tokenizer use 3f9a1c2b7d4e      # a fingerprint (or its first 6+ digits) from `nanochat tokenizer list`"""


@app.command("train", epilog=TRAIN_EPILOG)
def train(ctx: typer.Context,
          vocab_size: Annotated[Optional[int], typer.Option(
              "--vocab-size", help="Tokens incl. 256 bytes and 9 specials (tokenizer.vocab_size).")] = None,
          train_chars: Annotated[Optional[int], typer.Option(
              "--train-chars", help="Characters of the corpus to train on (tokenizer.train_chars).")] = None,
          doc_cap: Annotated[Optional[int], typer.Option(
              "--doc-cap", help="Longest document prefix read, in chars (tokenizer.doc_cap).")] = None,
          if_missing: Annotated[bool, typer.Option(
              "--if-missing", help="Keep the default tokenizer when it loads with the configured vocab size; train "
                                   "only when there is none (what the Slurm job and the speedrun do).")] = False,
          profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Train a BPE tokenizer on the configured corpus and make it the default for new runs.

    It is stored as a new version under <home>/tokenizers/<fingerprint>/; versions stored before, and every
    checkpoint trained with them, are untouched. Builds the embedded corpus first if needed."""
    resolved = build_config(ctx, profile, config, {"tokenizer.vocab_size": vocab_size,
                                                   "tokenizer.train_chars": train_chars, "tokenizer.doc_cap": doc_cap})
    from nanochat_cli.tokenizer.training import train_tokenizer

    if if_missing:
        kept = _default_if_usable(resolved.config)
        if kept is not None:
            if json:
                output.emit_json({"kept": True, "fingerprint": kept.fingerprint, "vocab_size": kept.vocab_size})
            else:
                output.result(f"kept the default tokenizer {kept.fingerprint[:12]} ({kept.vocab_size:,} tokens): "
                              "nothing to train")
            return
    result = train_tokenizer(resolved.config, progress=output.info)
    fp = result["fingerprint"][:12]
    kept = result["other_versions"]
    output.info(f"{fp} is now the default tokenizer for new runs"
                + (" (it was already stored: same data, same version)" if not result["new"] else "")
                + (f"; the {kept} other version(s) in {result['tokenizers']} stay as they are" if kept else ""))
    if json:
        output.emit_json(result)
        return
    output.result(f"trained a {result['vocab_size']:,}-token BPE on {result['train_chars']:,} chars "
                  f"({result['train_docs']:,} documents) in {result['seconds']:.1f} s → version {fp} "
                  f"({result['dir']})")


def _default_if_usable(cfg):
    """The default tokenizer when it loads and has the configured vocab size, else None."""
    from nanochat_cli.errors import PreflightError
    from nanochat_cli.tokenizer import load_tokenizer

    try:
        tok = load_tokenizer(cfg)
    except PreflightError:
        return None
    return tok if getattr(tok, "fingerprint", None) else None


@app.command("eval", epilog=EVAL_EPILOG)
def eval_(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Compare the default tokenizer's compression (bytes/token) with GPT-2 and GPT-4 (cl100k), offline.

    The result is also saved as <home>/tokenizers/<fingerprint>/eval.json, which `nanochat report` shows for
    runs trained with that version."""
    resolved = build_config(ctx, profile, config)
    from nanochat_cli.paths import Paths
    from nanochat_cli.tokenizer import load_tokenizer
    from nanochat_cli.tokenizer.compare import compare_tokenizers
    from nanochat_cli.tokenizer.store import save_eval

    ours = load_tokenizer(resolved.config, any_vocab=True)
    report = compare_tokenizers(resolved.config, ours)
    try:
        output.info(f"saved → {save_eval(Paths.of(resolved.config), ours.fingerprint, report)}")
    except OSError as e:  # the comparison itself succeeded; not being able to keep it is worth a line, not a failure
        output.info(f"warning: could not save the result beside version {ours.fingerprint[:12]}: {e.strerror or e}")
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


@app.command("list", epilog=LIST_EPILOG)
def list_(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """List the stored tokenizer versions: fingerprint, vocab size, creation date, size, default (*).

    Each version is checked (hashes, metadata) without building its encoder; a damaged one is listed with
    its problem."""
    resolved = build_config(ctx, profile, config)
    from nanochat_cli.paths import Paths
    from nanochat_cli.tokenizer import list_tokenizers

    paths = Paths.of(resolved.config)
    versions = list_tokenizers(paths)
    if json:
        output.emit_json([v.to_json() for v in versions])
        return
    if not versions:
        output.info(f"no tokenizer versions in {paths.tokenizers} — train one: `nanochat tokenizer train`")
        return
    rows = [["*" if v.default else "", v.fingerprint[:12], f"{v.vocab_size:,}" if v.vocab_size else "—",
             (v.created or "—").replace("T", " ")[:16], output.human_size(v.size_bytes),
             "yes" if v.has_eval else "—",
             v.problem or "ok"] for v in versions]
    output.table(f"tokenizer versions in {paths.tokenizers} (* = default for new runs)",
                 ["", "fingerprint", "vocab", "created", "size", "eval", "status"], rows)


@app.command("use", epilog=USE_EPILOG)
def use(ctx: typer.Context,
        fingerprint: Annotated[str, typer.Argument(help="A version's fingerprint, or its first 6+ hex digits.")],
        profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Make a stored tokenizer version the default for new runs (checked first; nothing is retrained)."""
    resolved = build_config(ctx, profile, config)
    from nanochat_cli.paths import Paths
    from nanochat_cli.tokenizer import use_tokenizer

    tok = use_tokenizer(Paths.of(resolved.config), fingerprint)
    if json:
        output.emit_json({"fingerprint": tok.fingerprint, "vocab_size": tok.vocab_size})
        return
    output.result(f"{tok.fingerprint[:12]} ({tok.vocab_size:,} tokens) is now the default tokenizer for new runs")

