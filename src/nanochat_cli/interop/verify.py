"""Parity measured in transformers: does a NanoChatForCausalLM directory compute what our model computes?

Loads the directory with `AutoModelForCausalLM`/`AutoTokenizer` (offline, fp32) and compares, against our GPT on
the same weights: logits on three sequences (a chat or text prompt, a sample text, and random ids filling the
whole context) — max |Δ| must stay ≤ 1e-4 (measured ~6e-6 on cpu-tiny, ≤ 1e-6 on random models; a missing rotary
flip gives 4.5) —, greedy generation (HF `generate` with its KV cache against ours), and token ids of the sample
texts and conversations through transformers' own tokenizer and chat-template code. Cost: one extra copy of the
model and a forward at full context (~1 s on cpu-tiny, about a minute for d20 on 2 cores). The only module
here that imports transformers, and only when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nanochat_cli.errors import NanochatError, UsageError

LOGIT_TOLERANCE = 1e-4
INSTALL = "pip install 'nanochat-cli[hf]'"
GREEDY_TOKENS = 16


def transformers_version() -> str | None:
    """The installed transformers version when it has NanoChat (≥ 5.0), else None. Imports nothing heavy."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("transformers")
    except PackageNotFoundError:
        return None
    try:
        major = int(v.split(".")[0])
    except ValueError:
        return None
    return v if major >= 5 else None


def require_transformers(what: str, skip_hint: str | None = None) -> str:
    """The transformers version, or UsageError (exit 2) naming the install command."""
    from importlib.metadata import PackageNotFoundError, version

    v = transformers_version()
    if v is not None:
        try:
            import transformers  # noqa: F401 - a broken install is the same problem as a missing one
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"{what} needs transformers, and importing it fails ({e.__class__.__name__})",
                             INSTALL + (f" ({skip_hint})" if skip_hint else "")) from None
        return v
    try:
        found = f"transformers {version('transformers')} is installed, NanoChat needs ≥ 5.0"
    except PackageNotFoundError:
        found = "transformers is not installed"
    raise UsageError(f"{what} needs transformers ≥ 5.0 ({found})", INSTALL + (f" ({skip_hint})" if skip_hint else ""))


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _prompt(tokenizer, phase: str) -> list[int]:
    from nanochat_cli.interop.hf_tokenizer import SAMPLE_CONVERSATIONS
    from nanochat_cli.tokenizer.chat import render_for_completion

    if phase == "base":
        return tokenizer.encode("The capital of France is", prepend=tokenizer.bos_id)
    return render_for_completion(tokenizer, {"messages": SAMPLE_CONVERSATIONS[0]})


def our_greedy(model, prompt: list[int], n: int, stops: set[int]) -> tuple[list[int], float]:
    """Greedy tokens from our model with its KV cache (no calculator: transformers has none), and the smallest
    gap between the top two logits along the way (a near-tie explains a legitimate difference)."""
    import torch

    from nanochat_cli.model.gpt import KVCache

    c = model.config
    cache = KVCache(1, len(prompt) + n, c.n_layer, c.n_kv_head, c.head_dim, "cpu", torch.float32)
    out, gap = [], float("inf")
    with torch.no_grad():
        logits = model(torch.tensor([prompt]), kv_cache=cache)[0, -1]
        for _ in range(n):
            top = torch.topk(logits, 2).values
            gap = min(gap, float(top[0] - top[1]))
            tok = int(logits.argmax())
            out.append(tok)
            if tok in stops:
                break
            logits = model(torch.tensor([[tok]]), kv_cache=cache)[0, -1]
    return out, gap


def compare(directory: Path, model, tokenizer, phase: str, weight_dtype: str = "float32") -> dict[str, Any]:
    """Figures of parity between our `model` (+ `tokenizer`) and the NanoChatForCausalLM in `directory`. Our model is
    compared with weights rounded like the export's (`weight_dtype`), computing in fp32 on both sides."""
    import copy

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nanochat_cli.interop.hf_tokenizer import SAMPLE_CONVERSATIONS, sample_texts
    from nanochat_cli.tokenizer.chat import render_for_completion

    _quiet_transformers()
    ours = model
    if weight_dtype != "float32":  # round our weights the way the export did, then compute in fp32
        ours = copy.deepcopy(model)
        with torch.no_grad():
            for p in ours.parameters():
                p.copy_(p.to(getattr(torch, weight_dtype)).float())
    ours.eval()
    try:
        hf = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32, local_files_only=True)
        hf_tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - whatever transformers raises, it means the export does not load
        raise NanochatError(f"transformers {transformers.__version__} cannot load {directory}: "
                            f"{' '.join(str(e).split())[:200]}") from None
    hf.eval()
    kind = type(hf).__name__
    c = model.config
    prompt = _prompt(tokenizer, phase)
    text_ids = tokenizer.encode(sample_texts()[0], prepend=tokenizer.bos_id)[:c.seq_len]
    gen = torch.Generator().manual_seed(0)
    full = [tokenizer.bos_id] + torch.randint(0, c.vocab_size, (c.seq_len - 1,), generator=gen).tolist()
    sequences = []
    with torch.no_grad():
        for name, ids in (("prompt", prompt), ("text", text_ids), ("full context", full)):
            x = torch.tensor([ids])
            diff = float((ours(x) - hf(input_ids=x).logits.float()).abs().max())
            sequences.append({"name": name, "tokens": len(ids), "max_abs_diff": diff})
    # Only the two end tokens, passed to both sides: the check is of the generation machinery, and the full stop
    # list (turn tokens too) would end a random test model's reply after a few tokens and compare less.
    stops = {tokenizer.special_id("<|assistant_end|>"), tokenizer.bos_id}
    n = min(GREEDY_TOKENS, c.seq_len - len(prompt))
    mine, gap = our_greedy(ours, prompt, n, stops)
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                          max_new_tokens=n, do_sample=False, eos_token_id=sorted(stops),
                          pad_token_id=tokenizer.bos_id)
    theirs = out[0, len(prompt):].tolist()[:len(mine)]
    first_diff = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b),
                      None if len(mine) == len(theirs) else min(len(mine), len(theirs)))
    texts = sample_texts()
    text_bad = [i for i, t in enumerate(texts) if hf_tok.encode(t, add_special_tokens=False) != tokenizer.encode(t)]
    chat_bad, chat_error = [], None
    for i, messages in enumerate(SAMPLE_CONVERSATIONS):
        try:
            ids = hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        except Exception as e:  # noqa: BLE001 - no template, or one that refuses our conversations
            chat_error = " ".join(str(e).split())[:120] or type(e).__name__
            break
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        if list(ids) != render_for_completion(tokenizer, {"messages": messages}):
            chat_bad.append(i)
    return {
        "transformers": transformers.__version__, "class": kind, "weights": weight_dtype,
        "max_abs_logit_diff": max(s["max_abs_diff"] for s in sequences), "sequences": sequences,
        "greedy": {"tokens": len(mine), "equal": first_diff is None, "first_difference": first_diff,
                   "min_top2_gap": gap, "ours": mine, "transformers": theirs},
        "tokenizer": {"texts": len(texts), "equal": len(texts) - len(text_bad), "different": text_bad},
        "chat_template": {"conversations": len(SAMPLE_CONVERSATIONS), "error": chat_error,
                          "equal": 0 if chat_error else len(SAMPLE_CONVERSATIONS) - len(chat_bad),
                          "different": chat_bad},
    }


def problems(figures: dict[str, Any], chat_template: bool = True) -> list[str]:
    """What in `figures` means the directory does not compute what ours does (empty when parity holds).
    `chat_template`: whether its chat template must render like ours (an export's must; an imported directory's
    own template only decides how others prompt it)."""
    out = []
    if figures["class"] != "NanoChatForCausalLM":
        out.append(f"transformers built a {figures['class']}, not a NanoChatForCausalLM")
    if not figures["max_abs_logit_diff"] <= LOGIT_TOLERANCE:  # `not <=` also catches NaN
        out.append(f"max |Δlogit| {figures['max_abs_logit_diff']:.3g} > {LOGIT_TOLERANCE:g}")
    g = figures["greedy"]
    if not g["equal"] and g["min_top2_gap"] > 1e-3:  # a difference that no near-tie explains
        out.append(f"greedy generation differs at token {g['first_difference']}")
    t, ch = figures["tokenizer"], figures["chat_template"]
    if t["different"]:
        out.append(f"tokenizer ids differ on {len(t['different'])} of {t['texts']} texts")
    if chat_template and ch["error"]:
        out.append(f"its chat template fails: {ch['error']}")
    if chat_template and ch["different"]:
        out.append(f"chat template ids differ on {len(ch['different'])} of {ch['conversations']} conversations")
    return out


def summary(figures: dict[str, Any]) -> str:
    """One line: 'transformers 5.24.0: max |Δlogit| 3.1e-06 (3 sequences, up to 256 tokens), greedy 16/16, …'."""
    g, t, ch = figures["greedy"], figures["tokenizer"], figures["chat_template"]
    longest = max(s["tokens"] for s in figures["sequences"])
    greedy = (f"greedy {g['tokens']}/{g['tokens']} tokens equal" if g["equal"]
              else f"greedy differs at token {g['first_difference']} (top-2 gap {g['min_top2_gap']:.2g})")
    chat = (f"its chat template fails ({ch['error'][:60]})" if ch.get("error")
            else f"chat template on {ch['equal']}/{ch['conversations']} conversations")
    return (f"transformers {figures['transformers']}: max |Δlogit| {figures['max_abs_logit_diff']:.2g} "
            f"({len(figures['sequences'])} sequences, up to {longest} tokens), {greedy}, tokenizer ids equal on "
            f"{t['equal']}/{t['texts']} texts, {chat}")
