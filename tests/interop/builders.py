"""Things interop tests start from, built in-process in milliseconds: a small trained BPE stored as a version, tiny
GPTs with weights spread wide enough that greedy decisions are not near-ties, checkpoints saved the way training
saves them (with a run manifest), and karpathy/nanochat's on-disk layout written from its published format facts
(file names, meta.json fields, a pickled tiktoken Encoding, int32 token byte counts) — not from its code."""

from __future__ import annotations

import functools
import json
import pickle
from dataclasses import asdict
from pathlib import Path

from nanochat_cli.interop.hf_tokenizer import EXTRA_TEXTS


@functools.lru_cache(maxsize=None)
def bpe_ranks(vocab: int = 700) -> tuple:
    from nanochat_cli.tokenizer.bpe import train_ranks
    from nanochat_cli.tokenizer.samples import SAMPLES

    texts = list(SAMPLES.values()) * 3 + list(EXTRA_TEXTS)
    return tuple(sorted(train_ranks(texts, vocab).items(), key=lambda kv: kv[1]))


def install_bpe(home: Path, vocab: int = 700):
    """A trained BPE stored as a version under `home` (not the default); returns the loaded tokenizer."""
    from nanochat_cli.paths import Paths
    from nanochat_cli.tokenizer import store
    from nanochat_cli.tokenizer.bpe import SPLIT_PATTERN, ranks_to_file_bytes

    data = ranks_to_file_bytes(dict(bpe_ranks(vocab)))
    meta = store.new_meta(data, len(bpe_ranks(vocab)), SPLIT_PATTERN, {})
    directory, _ = store.install_version(Paths(home), meta, {store.TOKEN_FILE: data})
    return store.load_version(directory)


def random_gpt(vocab_size: int, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_kv_head: int = 2,
               seq_len: int = 96, softcap: float = 15.0, seed: int = 0):
    """A GPT with N(0, 3/√fan_in) matrices and a N(0, 1) embedding: logits spread over several units, so argmax
    decisions are clear (nanochat's init puts the head near zero: every logit ties)."""
    import torch

    from nanochat_cli.model.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_kv_head=n_kv_head,
                          seq_len=seq_len, softcap=softcap))
    model.init_weights()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 1.0 if "wte" in name else 3 / p.shape[1] ** 0.5)
    return model.eval()


def save_trained(home: Path, run: str, phase: str, model, tokenizer, step: int = 5, manifest: bool = True,
                 config_overrides: dict | None = None) -> Path:
    """A finished checkpoint of `model` in run `run`, with a manifest and config.toml like training writes."""
    from nanochat_cli import checkpoint as ck
    from nanochat_cli.config import config_to_toml_dict
    from nanochat_cli.config_sources import load_config
    from nanochat_cli.paths import Paths
    from nanochat_cli.runs import DONE, Manifest

    cfg = load_config(flags={"home": str(home)}, environ={}).config
    conf = config_to_toml_dict(cfg)
    for dotted, value in (config_overrides or {}).items():
        section, key = dotted.split(".")
        conf[section][key] = value
    meta = {"phase": phase, "run_id": run, "config": conf, "model_config": asdict(model.config),
            "tokenizer": {"kind": getattr(tokenizer, "kind", "byte"), "vocab_size": tokenizer.vocab_size,
                          "fingerprint": getattr(tokenizer, "fingerprint", None)},
            "num_iterations": step, "metrics": {"loss": 2.5, "val_bpb": 1.75}}
    directory = Paths(home).run_checkpoints(run, phase)
    path = ck.save_checkpoint(directory, step, model.state_dict(), [], meta)
    if manifest:
        m = Manifest.create(Paths(home), run, cfg, [phase])
        m.update_phase(phase, status=DONE, step=step, num_iterations=step, checkpoint=str(path),
                       checkpoint_dir=str(directory), metrics={"loss": 2.5, "val_bpb": 1.75}, train_seconds=12.5)
    return path


# ---------------------------------------------------------------------------------------------------
# karpathy/nanochat's layout

def nanochat_state(model, *, prefix: str = "", bf16_embedding: bool = False) -> dict:
    """Our model's weights as nanochat stores them: the same names, q/k in nanochat's rotary direction (−θ),
    optionally torch.compile's `_orig_mod.` prefix and the bf16 embedding GPU training leaves."""
    import torch

    from nanochat_cli.interop.weights import flip_rotary

    c = model.config
    out = {}
    for name, t in model.state_dict().items():
        if name.endswith("attn.c_q.weight"):
            t = flip_rotary(t, c.n_head, c.head_dim)
        elif name.endswith("attn.c_k.weight"):
            t = flip_rotary(t, c.n_kv_head, c.head_dim)
        if bf16_embedding and name == "transformer.wte.weight":
            t = t.to(torch.bfloat16)
        out[prefix + name] = t.clone()
    return out


def write_nanochat(root: Path, model, ranks: dict, pattern: str, step: int = 10, phase_dir: str = "chatsft_checkpoints",
                   tag: str = "d2", state: dict | None = None, model_config_extra: dict | None = None) -> Path:
    """`root/<phase_dir>/<tag>/{model,meta}_<step>.{pt,json}` + `root/tokenizer/{tokenizer.pkl,token_bytes.pt}`;
    returns the checkpoint directory."""
    import tiktoken
    import torch

    from nanochat_cli.tokenizer.special import SPECIAL_TOKENS

    c = model.config
    ckpt = root / phase_dir / tag
    ckpt.mkdir(parents=True, exist_ok=True)
    tok_dir = root / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state if state is not None else nanochat_state(model, prefix="_orig_mod."), ckpt / f"model_{step:06d}.pt")
    mc = {"sequence_len": c.seq_len, "vocab_size": c.vocab_size, "n_layer": c.n_layer, "n_head": c.n_head,
          "n_kv_head": c.n_kv_head, "n_embd": c.n_embd, **(model_config_extra or {})}
    meta = {"step": step, "val_bpb": 1.2345, "model_config": mc, "user_config": {"depth": c.n_layer},
            "device_batch_size": 4, "max_seq_len": c.seq_len, "dataloader_state_dict": {"pq_idx": 0},
            "loop_state": {"min_val_bpb": 1.2, "smooth_train_loss": 3.4, "total_training_time": 56.7}}
    (ckpt / f"meta_{step:06d}.json").write_text(json.dumps(meta, indent=2))
    specials = {name: len(ranks) + i for i, name in enumerate(SPECIAL_TOKENS)}
    enc = tiktoken.Encoding(name="rustbpe", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
    with open(tok_dir / "tokenizer.pkl", "wb") as f:
        pickle.dump(enc, f)
    # bytes per token as tok_train.py counts them: the token decoded (with replacement) and re-encoded; specials 0
    counts = [0 if i in specials.values() else len(enc.decode([i]).encode("utf-8")) for i in range(enc.n_vocab)]
    torch.save(torch.tensor(counts, dtype=torch.int32), tok_dir / "token_bytes.pt")
    return ckpt
