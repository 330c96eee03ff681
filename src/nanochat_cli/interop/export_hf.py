"""`nanochat export hf`: a checkpoint → a directory transformers loads offline as NanoChatForCausalLM.

Writes config.json, generation_config.json, model.safetensors (renamed, rotary-flipped, vocab cut: weights.py),
tokenizer.json + tokenizer_config.json (with the chat template) + special_tokens_map.json, and a README model
card, into a hidden temporary directory beside --out; checks it, then renames it into place, so --out is either
absent or a complete, checked export. Checks before anything is written: the model is one NanoChatForCausalLM can
express (hf_config.exportable_problem) and the HF tokenizer gives our ids on every sample text and conversation
(tokenizers + jinja2 only). `--verify` (the default) then loads the directory in transformers and compares logits,
greedy tokens and tokenizer ids with ours (verify.py); a failure keeps nothing. It never overwrites: an --out that
exists and is not empty is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanochat_cli.errors import NanochatError, UsageError

MODEL_FILE = "model.safetensors"
WEIGHT_DTYPES = ("float32", "bfloat16")


@dataclass
class ExportResult:
    out: str
    phase: str
    run: str
    step: int
    description: str
    files: list[str]
    weights: str
    verified: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file", "choose a directory path that does not exist yet")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"--out {out} exists and is not empty; an export never overwrites files",
                         "choose a new directory (or remove that one yourself)")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def export_hf(cfg, phase: str, out: Path | str, *, run: str | None = None, step: int | None = None,
              depth: int | None = None, verify: bool = True, weights: str = "float32",
              say=lambda line: None) -> ExportResult:
    import torch
    from safetensors.torch import save_file

    from nanochat_cli.interop import hf_config, hf_tokenizer, model_card
    from nanochat_cli.interop.verify import problems, require_transformers
    from nanochat_cli.interop.weights import to_hf_state
    from nanochat_cli.model.inference import load_for_inference
    from nanochat_cli.paths import Paths, ensure_dir
    from nanochat_cli.paths import check_writable_dir

    if weights not in WEIGHT_DTYPES:
        raise UsageError(f"--dtype {weights!r} is not one of {', '.join(WEIGHT_DTYPES)}")
    out = Path(out).expanduser()
    _check_out(out)
    check_writable_dir(out.parent, "--out's parent", "choose an --out in a directory you can write")
    if verify:  # before any work: the check needs transformers
        require_transformers("verifying the export (--verify)", "or skip the check with --no-verify")
    loaded = load_for_inference(cfg, phase, step, device="cpu", run=run, depth=depth, quiet=False)
    say(loaded.description)
    problem = hf_config.exportable_problem(loaded.meta)
    if problem:
        raise UsageError(f"cannot export the {loaded.description}: {problem}",
                         "export a model trained with the reference GPT")
    model, tok, c = loaded.model, loaded.tokenizer, loaded.model.config
    hf_tok = hf_tokenizer.build_hf_tokenizer(tok)
    n_texts = hf_tokenizer.check_same_tokenizer(hf_tok, tok, f"the tokenizer of the {loaded.description}")
    bad_chats = hf_tokenizer.chat_differences(hf_tok, tok)
    if bad_chats:
        raise NanochatError(f"the chat template renders {len(bad_chats)} sample conversation(s) to other ids than "
                            "nanochat's template (a bug: please report it)")
    config = hf_config.to_hf_config(c, tok, weights)
    ensure_dir(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the export from the other users of a shared disk
        _write_json(tmp / hf_config.CONFIG_JSON, config)
        _write_json(tmp / hf_config.GENERATION_CONFIG_JSON, hf_config.generation_config(tok))
        tensors = to_hf_state(model.state_dict(), c, getattr(torch, weights))
        provenance = {"format": "pt", "nanochat_phase": loaded.phase, "nanochat_run": loaded.run,
                      "nanochat_step": str(loaded.step), "nanochat_tokenizer": str(getattr(tok, "fingerprint", None))}
        save_file(tensors, str(tmp / MODEL_FILE), metadata=provenance)
        del tensors
        (tmp / hf_tokenizer.TOKENIZER_JSON).write_text(hf_tok.to_str(), encoding="utf-8")
        _write_json(tmp / hf_tokenizer.TOKENIZER_CONFIG, hf_tokenizer.tokenizer_config(tok, c.seq_len))
        _write_json(tmp / hf_tokenizer.SPECIAL_TOKENS_MAP, hf_tokenizer.special_tokens_map())
        figures = None
        if verify:
            from nanochat_cli.interop.verify import compare

            say("checking the export in transformers (logits, greedy generation, tokenizer, chat template)…")
            figures = compare(tmp, model, tok, loaded.phase, weights)
            wrong = problems(figures)
            if wrong:
                raise NanochatError(f"the exported model does not compute what the {loaded.description} computes: "
                                    f"{'; '.join(wrong)} — nothing was written", "please report this as a bug")
        run_dir = Paths.of(cfg).run_dir(loaded.run) if loaded.run else None
        card = model_card.render(loaded, run_dir, config, figures, weights)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir())
        for name in files:  # safetensors writes 0600; an export is for sharing
            os.chmod(tmp / name, 0o644)
        if out.is_dir():
            out.rmdir()  # empty (checked above); a file appearing meanwhile makes this fail rather than be lost
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    notes = [] if verify else ["not verified in transformers (--no-verify); tokenizer ids were checked on "
                               f"{n_texts} texts"]
    return ExportResult(out=str(out), phase=loaded.phase, run=loaded.run, step=loaded.step,
                        description=loaded.description, files=files, weights=weights, verified=figures, notes=notes)
