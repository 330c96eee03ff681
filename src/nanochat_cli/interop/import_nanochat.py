"""`nanochat import nanochat CHECKPOINT_DIR --tokenizer DIR`: karpathy/nanochat's Oct–Dec 2025 layout → a run.

That layout (what the seed fork's users have): a checkpoint directory such as `base_checkpoints/d20/` with
`model_<step:06d>.pt` (a torch.save'd state dict, our key names, often with torch.compile's `_orig_mod.` prefix,
embedding in bf16 when trained on GPU), `meta_<step:06d>.json` (`model_config`: sequence_len, vocab_size,
n_layer, n_head, n_kv_head, n_embd; plus step, val_bpb, …) and, in `<base>/tokenizer/`, `tokenizer.pkl` (a
pickled tiktoken Encoding) and `token_bytes.pt` (int32 bytes per token id, 0 for special tokens, counted on
the UTF-8 of the token decoded with replacement). Safety first: .pt files are read only with
`torch.load(weights_only=True)`, the pickle only through safe_pickle (nothing in it runs). nanochat rotates by −θ,
we by +θ: q/k are flipped (weights.py). Its soft-cap was a constant 15 and its rotary base 10,000; later versions
(2026: value embeddings, sliding windows, per-layer scalars, rotary base 100,000) add config fields and tensors,
each refused by name. nanochat kept cos/sin in bf16; we compute them in fp32, so logits differ from nanochat's own
by bf16 rounding (the weights are the same).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nanochat_cli.errors import UsageError

MODEL_FILE = re.compile(r"^model_(\d+)\.pt$")
PHASE_DIRS = {"base_checkpoints": "base", "mid_checkpoints": "mid", "chatsft_checkpoints": "sft"}
CONFIG_KEYS = {"sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd"}
LATER_CONFIG = {"window_pattern": "sliding-window attention (window_pattern)"}


def find_step(directory: Path, step: int | None) -> tuple[int, Path, Path]:
    """(step, model file, meta file) in a nanochat checkpoint directory; the newest step unless `step`."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory", "pass a nanochat checkpoint directory, e.g. "
                                                            "~/.cache/nanochat/base_checkpoints/d20")
    steps = sorted(int(m.group(1)) for p in directory.iterdir() if (m := MODEL_FILE.match(p.name)))
    if not steps:
        tags = sorted(p.name for p in directory.iterdir()
                      if p.is_dir() and any(MODEL_FILE.match(q.name) for q in p.iterdir()))
        if tags:
            raise UsageError(f"{directory} holds model tags ({', '.join(tags)}), not a checkpoint",
                             f"pass one of them, e.g. {directory / tags[-1]}")
        raise UsageError(f"{directory} has no model_<step>.pt", "pass the directory nanochat saved the checkpoint "
                                                                "in (e.g. base_checkpoints/d20)")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise UsageError(f"{directory} has no checkpoint at step {step}", f"steps present: "
                                                                           f"{', '.join(map(str, steps))}")
    model = directory / f"model_{step:06d}.pt"
    if not model.is_file():
        model = next(p for p in directory.iterdir() if (m := MODEL_FILE.match(p.name)) and int(m.group(1)) == step)
    meta = directory / f"meta_{step:06d}.json"
    if not meta.is_file():
        raise UsageError(f"{directory} has {model.name} but no {meta.name}",
                         "copy the meta_<step>.json nanochat saved with the weights (it holds model_config)")
    return step, model, meta


def read_model_config(meta_path: Path):
    """(GPTConfig, meta) from meta_<step>.json; UsageError naming each field our GPT cannot express."""
    from nanochat_cli.interop.hf_config import read_json
    from nanochat_cli.model.gpt import GPTConfig

    meta = read_json(meta_path, "nanochat checkpoint's metadata (meta_<step>.json)")
    mc = meta.get("model_config")
    if not isinstance(mc, dict):
        raise UsageError(f"{meta_path} has no model_config object")
    later = [LATER_CONFIG.get(k, k) for k in sorted(set(mc) - CONFIG_KEYS)]
    if later:
        raise UsageError(f"{meta_path}: model_config has {', '.join(later)}, which nanochat's GPT of late 2025 (and "
                         "ours) does not have; importing it would compute something else",
                         "import a checkpoint of the Oct–Dec 2025 architecture")
    mc = dict(mc)
    mc.setdefault("n_kv_head", mc.get("n_head"))
    bad = [k for k in sorted(CONFIG_KEYS) if not isinstance(mc.get(k), int) or isinstance(mc.get(k), bool)
           or mc[k] < 1]
    if bad:
        raise UsageError(f"{meta_path}: model_config {', '.join(bad)} must be positive integers")
    try:
        config = GPTConfig(vocab_size=mc["vocab_size"], n_layer=mc["n_layer"], n_embd=mc["n_embd"],
                           n_head=mc["n_head"], n_kv_head=mc["n_kv_head"], seq_len=mc["sequence_len"], softcap=15.0)
    except ValueError as e:
        raise UsageError(f"{meta_path}: model_config is not a valid model ({e})") from None
    if config.head_dim % 2:
        raise UsageError(f"{meta_path}: head dimension {config.head_dim} is odd (rotary pairs channels)")
    return config, meta


def check_token_bytes(path: Path, tokenizer) -> str | None:
    """None when token_bytes.pt agrees with the tokenizer, else UsageError; a note when the file is absent."""
    import torch

    from nanochat_cli.interop.into_run import load_plain

    if not path.is_file():
        return f"{path.name} not found beside tokenizer.pkl, so it was not checked"
    try:
        tb = load_plain(path)
    except Exception as e:  # noqa: BLE001 - weights_only refuses anything but tensors; garbage raises anything
        raise UsageError(f"{path} does not load as a plain tensor ({e.__class__.__name__}); nothing in it was run",
                         "copy token_bytes.pt again from the nanochat tokenizer directory") from None
    n = tokenizer.vocab_size
    if not isinstance(tb, torch.Tensor) or tb.dim() != 1 or tb.numel() != n or tb.is_floating_point():
        shape = tuple(tb.shape) if isinstance(tb, torch.Tensor) else type(tb).__name__
        raise UsageError(f"{path} is not one integer per token id ({n:,}); found {shape}",
                         "pass the tokenizer directory the checkpoint was trained with")
    special = set(range(n - 9, n))
    raw = [0 if i in special else len(tokenizer.token_bytes(i)) for i in range(n)]
    shown = [0 if i in special else len(tokenizer.token_bytes(i).decode("utf-8", "replace").encode("utf-8"))
             for i in range(n)]
    have = tb.tolist()
    if have not in (shown, raw):
        first = next(i for i in range(n) if have[i] != shown[i])
        raise UsageError(f"{path} does not match tokenizer.pkl (token {first}: {have[first]} bytes, the tokenizer "
                         f"says {shown[first]})", "pass the tokenizer directory the checkpoint was trained with")
    return None


def import_nanochat(cfg, checkpoint_dir: Path | str, *, tokenizer_dir: Path | str | None = None,
                    phase: str | None = None, step: int | None = None, run: str | None = None,
                    say=lambda line: None):
    from nanochat_cli.interop.into_run import (ImportResult, check_phase_free, load_plain, prepare_tokenizer,
                                               write_checkpoint)
    from nanochat_cli.interop.safe_pickle import load_encoding_state
    from nanochat_cli.paths import sha256_file
    from nanochat_cli.interop.weights import to_our_state
    from nanochat_cli.paths import PHASES
    from nanochat_cli.tokenizer.special import SPECIAL_TOKENS

    directory = Path(checkpoint_dir).expanduser().resolve()
    step, model_path, meta_path = find_step(directory, step)
    if phase is None:
        phase = PHASE_DIRS.get(directory.parent.name)
        if phase is None:
            raise UsageError(f"cannot tell the phase of {directory} from its folder name", "pass --phase base, mid "
                                                                                           "or sft")
    if phase not in PHASES:
        raise UsageError(f"--phase {phase!r} is not one of {', '.join(PHASES)}")
    check_phase_free(cfg, run, phase)
    config, meta = read_model_config(meta_path)
    tok_dir = Path(tokenizer_dir).expanduser().resolve() if tokenizer_dir else directory.parent.parent / "tokenizer"
    if not (tok_dir / "tokenizer.pkl").is_file():
        raise UsageError(f"no tokenizer.pkl in {tok_dir}", "pass nanochat's tokenizer directory with --tokenizer "
                                                           "(it holds tokenizer.pkl and token_bytes.pt)")
    pkl = tok_dir / "tokenizer.pkl"
    state = load_encoding_state(pkl)
    ranks, specials = state["mergeable_ranks"], state["special_tokens"]
    expected = {name: len(ranks) + i for i, name in enumerate(SPECIAL_TOKENS)}
    if specials != expected:
        raise UsageError(f"{pkl}: its special tokens are not nanochat's 9 at ids {len(ranks)}–{len(ranks) + 8}",
                         "import a tokenizer trained by nanochat's tok_train.py")
    source: dict[str, Any] = {"format": "nanochat", "path": str(directory), "step": step,
                              "tokenizer": str(tok_dir)}
    prepared = prepare_tokenizer("bpe", ranks, state["pat_str"], {"format": "nanochat", "path": str(pkl)}, str(pkl))
    tok = prepared.tokenizer
    notes = []
    note = check_token_bytes(tok_dir / "token_bytes.pt", tok)
    if note:
        notes.append(note)
    if tok.vocab_size != config.vocab_size:
        raise UsageError(f"{meta_path}: vocab_size {config.vocab_size:,} differs from the tokenizer's "
                         f"{tok.vocab_size:,} tokens ({pkl})", "pass the tokenizer the checkpoint was trained with")
    say(f"loading {model_path} (weights only)…")
    try:
        weights = load_plain(model_path)
    except Exception as e:  # noqa: BLE001 - weights_only refuses pickled objects; a torn file raises anything
        raise UsageError(f"{model_path} does not load as plain tensors ({e.__class__.__name__}); nothing in it was "
                         "run", "copy the file again (it may be truncated)") from None
    if not isinstance(weights, dict):
        raise UsageError(f"{model_path} holds a {type(weights).__name__}, not a state dict")
    ours = to_our_state(weights, config, names=None, flip=True, where=str(model_path))
    del weights
    source["files"] = {p.name: sha256_file(p) for p in (model_path, meta_path, pkl)}
    metrics = {k: meta[k] for k in ("val_bpb",) if isinstance(meta.get(k), (int, float))}
    run_id, path, tok_new, run_notes = write_checkpoint(cfg, phase=phase, run=run, run_prefix="nanochat", state=ours,
                                                        gpt_config=config, tokenizer=prepared, step=step,
                                                        source=source, metrics=metrics)
    return ImportResult(run=run_id, phase=phase, step=step, checkpoint=str(path),
                        tokenizer={**prepared.record, "new": tok_new}, source=source, notes=notes + run_notes)
