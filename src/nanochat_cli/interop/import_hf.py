"""`nanochat import hf DIR`: a NanoChatForCausalLM directory (ours or anyone's) → a checkpoint of a run.

Reads config.json (hf_config.from_hf_config refuses what our GPT cannot express), the weights (model.safetensors,
a sharded model.safetensors.index.json set, or pytorch_model.bin through `torch.load(weights_only=True)`), and
tokenizer.json (a byte-level BPE with nanochat's special tokens: hf_tokenizer.read_tokenizer_json), which must
give tiktoken's ids on every sample text. Weights are renamed, q/k flipped back to our rotary direction and the
vocab padded (weights.py), so an export followed by an import gives back the same tensors, bit for bit (padding
rows, which nothing reads, become zeros) and the same tokenizer fingerprint. `--verify` (the default) loads
the directory in transformers and compares it with the imported model before anything is written. What an
export recorded in model.safetensors' metadata (phase, run, step) becomes the step and the provenance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nanochat_cli.errors import NanochatError, UsageError

INDEX = "model.safetensors.index.json"


def _safetensors(path: Path) -> tuple[dict, dict]:
    """(tensors, metadata) of one safetensors file; UsageError naming the file when it does not load."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as e:  # noqa: BLE001 - SafetensorError, OverflowError on a forged header, OSError
        detail = " ".join(str(e).split())[:120]
        raise UsageError(f"{path} is not a complete safetensors file ({e.__class__.__name__}: {detail})",
                         "copy the file again (it may be truncated) or re-export it") from None
    return tensors, meta


def read_weights(directory: Path) -> tuple[dict, dict, list[Path]]:
    """(tensors by name, metadata of the first file, files read) of an HF model directory."""
    directory = Path(directory)
    single, index, binary = directory / "model.safetensors", directory / INDEX, directory / "pytorch_model.bin"
    if single.is_file():
        tensors, meta = _safetensors(single)
        return tensors, meta, [single]
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            files = sorted(set(weight_map.values()))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
            weight_map, files = None, []
        if not isinstance(weight_map, dict) or not all(isinstance(f, str) and f and "/" not in f and f != ".."
                                                       for f in files):
            raise UsageError(f"{index} is not a safetensors index (a weight_map of tensor → file in this "
                             "directory)")
        tensors, first_meta = {}, {}
        for name in files:
            part, meta = _safetensors(directory / name)
            first_meta = first_meta or meta
            tensors.update(part)
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise UsageError(f"{index} lists tensors its files do not hold: {', '.join(missing[:3])}")
        return tensors, first_meta, [directory / f for f in files]
    if binary.is_file():
        from nanochat_cli.interop.into_run import load_plain

        try:
            tensors = load_plain(binary)
        except Exception as e:  # noqa: BLE001 - weights_only refuses anything but tensors and plain containers
            raise UsageError(f"{binary} does not load as plain tensors ({e.__class__.__name__}); nothing in it "
                             "was run") from None
        if not isinstance(tensors, dict):
            raise UsageError(f"{binary} holds a {type(tensors).__name__}, not a state dict")
        return tensors, {}, [binary]
    raise UsageError(f"{directory} has no model.safetensors (nor a sharded index or pytorch_model.bin)",
                     "pass the directory that transformers' save_pretrained (or `nanochat export hf`) wrote")


def import_hf(cfg, directory: Path | str, *, phase: str | None = None, run: str | None = None, verify: bool = True,
              say=lambda line: None):
    from nanochat_cli.interop import hf_config, hf_tokenizer
    from nanochat_cli.interop.into_run import ImportResult, check_phase_free, prepare_tokenizer, write_checkpoint
    from nanochat_cli.interop.verify import require_transformers
    from nanochat_cli.paths import sha256_file
    from nanochat_cli.interop.weights import hf_to_our_names, to_our_state
    from nanochat_cli.paths import PHASES
    from nanochat_cli.tokenizer.special import SPECIAL_TOKENS

    if phase is not None and phase not in PHASES:
        raise UsageError(f"--phase {phase!r} is not one of {', '.join(PHASES)}")
    directory = Path(directory).expanduser().resolve()
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory", "pass the directory that holds config.json, "
                                                            "model.safetensors and tokenizer.json")
    if verify:
        require_transformers("checking the import against transformers (--verify)", "or skip it with --no-verify")
    gpt_config, raw_config, notes = hf_config.from_hf_config(directory)
    imported_tok = hf_tokenizer.read_tokenizer_json(directory)
    n_tok = len(imported_tok.ranks) + len(SPECIAL_TOKENS)
    if n_tok != gpt_config.vocab_size:
        raise UsageError(f"{directory / hf_config.CONFIG_JSON}: vocab_size {gpt_config.vocab_size:,} differs from "
                         f"the tokenizer's {n_tok:,} tokens", "the model and its tokenizer must belong together")
    tensors, st_meta, files = read_weights(directory)
    if raw_config.get("tie_word_embeddings") and "lm_head.weight" not in tensors \
            and "model.embed_tokens.weight" in tensors:
        tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]
        notes.append("its head is tied to the embedding; imported as an untied copy (same numbers)")
    state = to_our_state(tensors, gpt_config, names=hf_to_our_names(gpt_config), flip=True,
                         where=str(files[0] if len(files) == 1 else directory), ignore=("rotary_emb.inv_freq",))
    del tensors
    source: dict[str, Any] = {"format": "hf", "path": str(directory),
                              "files": {p.name: sha256_file(p) for p in files}}
    for key in ("nanochat_phase", "nanochat_run", "nanochat_step"):
        if key in st_meta:
            source[key.removeprefix("nanochat_")] = st_meta[key]
    step = int(st_meta["nanochat_step"]) if str(st_meta.get("nanochat_step", "")).isdigit() else 0
    if phase is None:  # what our export recorded, else a chat model
        phase = st_meta.get("nanochat_phase") if st_meta.get("nanochat_phase") in PHASES else "sft"
    check_phase_free(cfg, run, phase)
    prepared = prepare_tokenizer(imported_tok.kind, imported_tok.ranks, imported_tok.pattern,
                                 {"format": "hf", "path": str(imported_tok.source)}, str(imported_tok.source))
    tok = prepared.tokenizer
    from tokenizers import Tokenizer

    try:
        hf_tok = Tokenizer.from_file(str(imported_tok.source))
    except Exception as e:  # noqa: BLE001 - the Rust side refusing the file (e.g. a pattern Oniguruma rejects)
        raise UsageError(f"{imported_tok.source} does not load in HF tokenizers "
                         f"({' '.join(str(e).split())[:120]})") from None
    hf_tokenizer.check_same_tokenizer(hf_tok, tok, str(imported_tok.source))
    figures = None
    if verify:
        from nanochat_cli.interop.verify import compare, problems
        from nanochat_cli.model.gpt import GPT

        say("checking the imported model against transformers (logits, greedy generation, tokenizer)…")
        model = GPT(gpt_config)
        model.load_state_dict(state, strict=True)
        model.eval()
        figures = compare(directory, model, tok, phase)
        wrong = problems(figures, chat_template=False)
        if wrong:
            raise NanochatError(f"the imported model does not compute what transformers computes from {directory}: "
                                f"{'; '.join(wrong)} — nothing was imported", "please report this as a bug")
        chat = figures["chat_template"]
        if chat["different"] or chat.get("error"):
            notes.append("its own chat template renders conversations differently from nanochat's; `nanochat "
                         "chat` prompts it with nanochat's template")
        del model
    run_id, path, tok_new, run_notes = write_checkpoint(cfg, phase=phase, run=run, run_prefix="hf", state=state,
                                                        gpt_config=gpt_config, tokenizer=prepared, step=step,
                                                        source=source)
    return ImportResult(run=run_id, phase=phase, step=step, checkpoint=str(path),
                        tokenizer={**prepared.record, "new": tok_new}, source=source, verified=figures,
                        notes=notes + run_notes)
