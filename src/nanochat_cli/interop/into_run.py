"""An imported model becomes an ordinary checkpoint of a run: `runs/<run>/checkpoints/<phase>/step_NNNNNN/` with
model.safetensors and a meta.json like training writes (model_config, tokenizer kind/vocab/fingerprint,
num_iterations = step, so the phase counts as finished), its tokenizer a version in the store, and a manifest
entry `imported_from` saying where it came from. Everything that reads checkpoints (chat, eval, report, serve,
`train mid|sft` starting from it) then treats it like a trained one.

The import holds the run's writer lock, and a run's phase that already has checkpoints is refused (exit 2): an
import never writes over a trained model. The run's config.toml (written when the import creates the run)
describes the imported architecture, so `--config runs/<run>/config.toml` rebuilds the same model. The tokenizer
version is added, never made the default: importing someone's model does not change what new runs train with.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanochat_cli.errors import PreflightError, UsageError


@dataclass
class ImportResult:
    run: str
    phase: str
    step: int
    checkpoint: str
    tokenizer: dict[str, Any]     # kind, vocab_size, fingerprint, new (added to the store now)
    source: dict[str, Any]
    verified: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_plain(path: Path):
    """torch.load with weights_only=True (tensors and plain containers; no code runs), quietly: torch warns about
    pickle protocols it did not write, which says nothing to the user."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------------
# The tokenizer: a version in the store (or the byte-level one)

@dataclass
class PreparedTokenizer:
    """A checked tokenizer ready to be stored: the tokenizer itself, its meta.json record, and (BPE) the version's
    metadata and ranks file, written by `install` only once everything else about the import has checked out."""

    tokenizer: Any
    record: dict[str, Any]
    meta: dict[str, Any] | None = None
    data: bytes | None = None


def prepare_tokenizer(kind: str, ranks: dict[bytes, int], pattern: str | None, source: dict,
                      where: str) -> PreparedTokenizer:
    """Imported ranks as our tokenizer: kind "byte" is the byte-level one (no files); a BPE is validated like a
    trained version (ranks, pattern, a tiktoken round trip). Problems are UsageErrors naming `where`."""
    from nanochat_cli.tokenizer import store
    from nanochat_cli.tokenizer.bpe import BPETokenizer, ranks_to_file_bytes

    if kind == "byte":
        from nanochat_cli.tokenizer.byte_level import ByteTokenizer

        tok = ByteTokenizer()
        return PreparedTokenizer(tok, {"kind": "byte", "vocab_size": tok.vocab_size, "fingerprint": None})
    if pattern is None:
        raise UsageError(f"{where}: a BPE tokenizer without a split pattern cannot run in tiktoken",
                         "import a tokenizer that splits text with a regex first (nanochat's does)")
    data = ranks_to_file_bytes(ranks)
    try:
        store.parse_ranks_checked(data, Path(where))
        store.check_pattern(pattern, Path(where))
    except PreflightError as e:  # bad input here, not a missing prerequisite
        raise UsageError(e.message, "import a tokenizer with ranks 0..n-1 (256 single bytes first) and a split "
                                    "pattern that covers all text") from None
    meta = store.new_meta(data, len(ranks), pattern, {"imported_from": source})
    try:
        tok = BPETokenizer(ranks, meta["fingerprint"], pattern, meta, ranks_sha256=meta["ranks_sha256"])
        ok = tok.decode(tok.encode(store.ROUND_TRIP)) == store.ROUND_TRIP
    except BaseException as e:  # fancy-regex refusing the pattern (ValueError), or a Rust panic
        if type(e).__name__ != "PanicException" and not isinstance(e, Exception):
            raise
        raise UsageError(f"{where}: tiktoken cannot use this tokenizer ({' '.join(str(e).split())[:120]})") from None
    if not ok:
        raise UsageError(f"{where}: the tokenizer does not round-trip text (decode(encode(x)) != x)")
    return PreparedTokenizer(tok, {"kind": "bpe", "vocab_size": tok.vocab_size, "fingerprint": meta["fingerprint"]},
                             meta, data)


def install_tokenizer(cfg, prepared: PreparedTokenizer) -> bool:
    """Store a prepared BPE as a version (never as the default); True when it was not there before."""
    from nanochat_cli.paths import ensure_writable_dir
    from nanochat_cli.locks import hold
    from nanochat_cli.paths import Paths
    from nanochat_cli.tokenizer import store

    if prepared.meta is None:
        return False
    paths = Paths.of(cfg)
    ensure_writable_dir(paths.tokenizers)
    with hold(paths.tokenizer_lock, wait=True, what="the tokenizer store"):
        directory, new = store.install_version(paths, prepared.meta, {store.TOKEN_FILE: prepared.data})
    store.check_version(directory)
    return new


# ---------------------------------------------------------------------------------------------------
# The run

def run_config(cfg, c, tok_record: dict):
    """`cfg` with its model and tokenizer sections describing the imported model (so the run's config.toml
    rebuilds it); `cfg` unchanged when the shape is not one our config can state (a note says so)."""
    from pydantic import ValidationError

    from nanochat_cli.config import Config

    hd = c.head_dim
    widths = [a for a in [c.n_embd // c.n_layer, *range(8, 1025)]
              if 8 <= a <= 1024 and -(-c.n_layer * a // hd) * hd == c.n_embd]
    data = cfg.model_dump()
    data["model"].update(depth=c.n_layer, head_dim=hd, seq_len=c.seq_len, softcap=c.softcap,
                         n_kv_heads=c.n_kv_head if c.n_kv_head != c.n_head else None)
    if widths:
        data["model"]["aspect_ratio"] = widths[0]
    data["tokenizer"].update(kind=tok_record["kind"], vocab_size=tok_record["vocab_size"])
    try:
        new = Config.model_validate(data)
    except ValidationError:
        return cfg, "the run's config.toml keeps the profile's model settings (this shape is outside their bounds)"
    if not widths:
        return cfg, "the run's config.toml keeps the profile's model settings (no aspect_ratio gives this width)"
    return new, None


def check_phase_free(cfg, run: str | None, phase: str) -> None:
    """Refuse at once (before minutes of loading and checking) an import into a run's phase that has a model;
    write_checkpoint checks again under the run's lock."""
    from nanochat_cli import checkpoint as ck
    from nanochat_cli.paths import Paths
    from nanochat_cli.runs import check_run_name, is_placeholder

    if run is None or is_placeholder(run):
        return
    steps = ck.list_steps(Paths.of(cfg).run_checkpoints(check_run_name(run), phase))
    if steps:
        raise _taken(run, phase, steps[-1])


def _taken(run: str, phase: str, step: int) -> UsageError:
    return UsageError(f"run {run!r} already has a {phase} model (step {step}); an import never writes over a model",
                      "import into a new run: pass another --run name (or none)")


def write_checkpoint(cfg, *, phase: str, run: str | None, run_prefix: str, state: dict, gpt_config,
                     tokenizer: PreparedTokenizer, step: int, source: dict, metrics: dict | None = None
                     ) -> tuple[str, Path, bool, list[str]]:
    """Store the tokenizer, then save `state` as run `run`'s `phase` checkpoint at `step` (a new run named
    `run_prefix-…` when `run` is None); returns (run id, checkpoint path, tokenizer added now, notes)."""
    from nanochat_cli import checkpoint as ck
    from nanochat_cli.config import config_to_toml_dict
    from nanochat_cli.paths import ensure_writable_dir
    from nanochat_cli.paths import PHASES, Paths
    from nanochat_cli.runs import DONE, Manifest, new_run_name, writing_run

    if phase not in PHASES:
        raise UsageError(f"--phase {phase!r} is not one of {', '.join(PHASES)}")
    paths = Paths.of(cfg)
    run_id = new_run_name(run, run_prefix)
    ensure_writable_dir(paths.runs)
    notes = []
    tok_record = tokenizer.record
    run_cfg, note = run_config(cfg, gpt_config, tok_record)
    if note:
        notes.append(note)
    with writing_run(paths, run_id, f"import {phase}"):
        directory = paths.run_checkpoints(run_id, phase)
        steps = ck.list_steps(directory)
        if steps:
            raise _taken(run_id, phase, steps[-1])
        new_tokenizer = install_tokenizer(cfg, tokenizer)
        manifest = Manifest.create(paths, run_id, run_cfg, [phase])
        meta = {"phase": phase, "run_id": run_id, "config": config_to_toml_dict(run_cfg),
                "model_config": asdict(gpt_config), "tokenizer": tok_record, "num_iterations": step,
                "metrics": dict(metrics or {}), "imported_from": source,
                "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        path = ck.save_checkpoint(directory, step, state, [], meta)
        manifest.update_phase(phase, status=DONE, step=step, num_iterations=step, checkpoint=str(path),
                              checkpoint_dir=str(directory), metrics=dict(metrics or {}), imported_from=source)
    return run_id, path, new_tokenizer, notes
