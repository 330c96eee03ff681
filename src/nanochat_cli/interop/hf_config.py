"""Our GPTConfig ↔ transformers' NanoChatConfig (config.json), and what either side cannot express.

The two models are the same architecture (INTEROP-NOTES): pre-norm blocks with a parameter-free RMSNorm, rotary
(base 10,000, half-split) then QK-norm, ReLU² MLP of 4× width, untied head, tanh soft-cap. Three numbers need
care: `rms_norm_eps` is float32's eps, what `F.rms_norm(eps=None)` uses (transformers' default 1e-6 moved logits
by ~8.6e-6 on a cpu-tiny model, more on small-norm q/k); `intermediate_size` is 4 × width; `vocab_size` is the
tokenizer's, not our padded one. Import refuses by name every field our GPT cannot honour (another activation,
biases, another rope type or base, no soft-cap) instead of loading something that computes differently; a
different eps is accepted with a note (a rounding detail, measured by `--verify`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nanochat_cli.errors import UsageError

CONFIG_JSON = "config.json"
GENERATION_CONFIG_JSON = "generation_config.json"
FLOAT32_EPS = 1.1920928955078125e-07  # torch.finfo(torch.float32).eps: F.rms_norm's eps when none is given
ARCHITECTURE = "NanoChatForCausalLM"


def stop_ids(tokenizer) -> list[int]:
    """eos_token_id: where our engine ends a reply (<|assistant_end|> first, then <|bos|> and the turn tokens)."""
    from nanochat_cli.tokenizer.special import REPLY_STOP_TOKENS

    return [tokenizer.special_id(name) for name in REPLY_STOP_TOKENS]


def to_hf_config(c, tokenizer, dtype: str = "float32") -> dict[str, Any]:
    """config.json for a GPTConfig `c` (its tokenizer gives the special ids)."""
    from nanochat_cli.model.gpt import ROTARY_BASE

    return {
        "architectures": [ARCHITECTURE],
        "model_type": "nanochat",
        "vocab_size": c.vocab_size,
        "hidden_size": c.n_embd,
        "intermediate_size": 4 * c.n_embd,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_kv_head,
        "head_dim": c.head_dim,
        "max_position_embeddings": c.seq_len,
        "hidden_act": "relu2",
        "attention_dropout": 0.0,
        "attention_bias": False,
        "rms_norm_eps": FLOAT32_EPS,
        "rope_parameters": {"rope_type": "default", "rope_theta": float(ROTARY_BASE)},
        "final_logit_softcapping": float(c.softcap),
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "use_cache": True,
        # Generation stops where our engine does; pad_token_id stays null here: transformers would make a real
        # token's embedding row a frozen zero-gradient `padding_idx` for anyone fine-tuning the export.
        "bos_token_id": tokenizer.bos_id,
        "eos_token_id": stop_ids(tokenizer),
        "pad_token_id": None,
        "dtype": dtype,
    }


def generation_config(tokenizer) -> dict[str, Any]:
    return {"bos_token_id": tokenizer.bos_id, "eos_token_id": stop_ids(tokenizer),
            "pad_token_id": tokenizer.bos_id, "do_sample": False}


def exportable_problem(meta: dict) -> str | None:
    """Why a checkpoint's model cannot be written as a NanoChatForCausalLM that computes the same (None if it can)."""
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    model_file = (cfg.get("model") or {}).get("file") if isinstance(cfg.get("model"), dict) else None
    if model_file:
        return (f"it was trained with your own model code (model.file = {model_file}); NanoChatForCausalLM runs the "
                "reference GPT, which is not guaranteed to compute what your module computed")
    mc = meta.get("model_config") or {}
    softcap = mc.get("softcap", 15.0)
    if not isinstance(softcap, (int, float)) or not math.isfinite(softcap) or softcap <= 0:
        return f"its logit soft-cap {softcap!r} is not a positive number"
    return None


# ---------------------------------------------------------------------------------------------------
# Import: config.json → GPTConfig

def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UsageError(f"{path.parent} has no {path.name}", f"pass the directory that holds the {what}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise UsageError(f"{path} is not readable JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is a JSON {type(data).__name__}, not an object")
    return data


def _int(data: dict, key: str, path: Path, minimum: int = 1) -> int:
    v = data.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise UsageError(f"{path}: {key} is {v!r}, not an integer ≥ {minimum}")
    return v


def _cannot(path: Path, what: str) -> UsageError:
    return UsageError(f"{path}: {what}, which nanochat's GPT cannot express; importing it would compute something "
                      "else", "only NanoChatForCausalLM models of nanochat's architecture can be imported")


def from_hf_config(directory: Path) -> tuple[Any, dict, list[str]]:
    """(GPTConfig, the raw config.json, notes) for a NanoChatForCausalLM directory; UsageError naming each field
    our GPT cannot honour."""
    from nanochat_cli.model.gpt import ROTARY_BASE, GPTConfig

    path = Path(directory) / CONFIG_JSON
    data = read_json(path, "model (config.json)")
    archs = data.get("architectures") or []
    if data.get("model_type") != "nanochat":
        raise UsageError(f"{path}: model_type is {data.get('model_type')!r}"
                         + (f" ({', '.join(map(str, archs))})" if archs else "")
                         + ", not 'nanochat'", f"only {ARCHITECTURE} directories can be imported")
    vocab = _int(data, "vocab_size", path)
    width = _int(data, "hidden_size", path)
    layers = _int(data, "num_hidden_layers", path)
    heads = _int(data, "num_attention_heads", path)
    kv = data.get("num_key_value_heads")
    kv = heads if kv is None else _int(data, "num_key_value_heads", path)
    if width % heads:
        raise UsageError(f"{path}: hidden_size {width} is not a multiple of num_attention_heads {heads}")
    if heads % kv:
        raise UsageError(f"{path}: num_key_value_heads {kv} does not divide num_attention_heads {heads}")
    head_dim = data.get("head_dim")
    if head_dim is not None and head_dim != width // heads:
        raise _cannot(path, f"head_dim {head_dim} is not hidden_size / num_attention_heads = {width // heads}")
    if (width // heads) % 2:
        raise _cannot(path, f"the head dimension {width // heads} is odd (rotary pairs channels)")
    inter = data.get("intermediate_size", 8192)
    if inter != 4 * width:
        raise _cannot(path, f"intermediate_size is {inter}, not 4 × hidden_size = {4 * width}")
    act = data.get("hidden_act", "relu2")
    if act != "relu2":
        raise _cannot(path, f"hidden_act is {act!r}, not 'relu2' (ReLU²)")
    if data.get("attention_bias") or data.get("qkv_bias"):
        raise _cannot(path, "attention_bias is true (attention projections with biases)")
    rope = data.get("rope_parameters") or data.get("rope_scaling") or {}
    if not isinstance(rope, dict):
        raise _cannot(path, f"rope_parameters is {rope!r}")
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    theta = rope.get("rope_theta", data.get("rope_theta", ROTARY_BASE))
    if rope_type != "default":
        raise _cannot(path, f"rope type is {rope_type!r}, not 'default'")
    if not isinstance(theta, (int, float)) or float(theta) != float(ROTARY_BASE):
        raise _cannot(path, f"rope_theta is {theta!r}, not {ROTARY_BASE:g}")
    softcap = data.get("final_logit_softcapping", 15.0)
    if softcap is None:
        raise _cannot(path, "final_logit_softcapping is null (no logit soft-cap)")
    if not isinstance(softcap, (int, float)) or isinstance(softcap, bool) or not math.isfinite(softcap) or softcap <= 0:
        raise UsageError(f"{path}: final_logit_softcapping is {softcap!r}, not a positive number")
    seq_len = data.get("max_position_embeddings", 2048)
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 8:
        raise UsageError(f"{path}: max_position_embeddings is {seq_len!r}, not an integer ≥ 8")
    notes = []
    eps = data.get("rms_norm_eps", 1e-6)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps <= 1e-4:
        raise _cannot(path, f"rms_norm_eps is {eps!r} (ours is float32's eps, {FLOAT32_EPS:.3g})")
    if float(eps) != FLOAT32_EPS:
        notes.append(f"rms_norm_eps {eps:g} differs from ours ({FLOAT32_EPS:.3g}); logits differ by about 1e-5 "
                     "(rounding, not architecture)")
    config = GPTConfig(vocab_size=vocab, n_layer=layers, n_embd=width, n_head=heads, n_kv_head=kv,
                       seq_len=seq_len, softcap=float(softcap))
    return config, data, notes
