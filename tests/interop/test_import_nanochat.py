"""`nanochat import nanochat`: karpathy/nanochat's Oct–Dec 2025 layout becomes a run whose model computes what
nanochat's did; tokenizer.pkl is read without running anything in it; .pt files only with weights_only; later
architectures, wrong keys and damaged files are refused in one line (exit 2)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from nanochat_cli.errors import UsageError
from tests.interop.builders import bpe_ranks, random_gpt, write_nanochat
from tests.interop.conftest import cli, one_line_error


def cfg_of(home: Path):
    from nanochat_cli.config_sources import load_config

    return load_config(flags={"home": str(home)}, environ={}).config


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A nanochat base dir (chatsft_checkpoints/d2 + tokenizer/) and the model it holds, in our convention."""
    from nanochat_cli.tokenizer.bpe import SPLIT_PATTERN

    root = tmp_path_factory.mktemp("nanochat-base")
    ranks = dict(bpe_ranks())
    model = random_gpt(len(ranks) + 9, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, seq_len=64, seed=3)
    from tests.interop.builders import nanochat_state

    state = nanochat_state(model, prefix="_orig_mod.", bf16_embedding=True)
    ckpt = write_nanochat(root, model, ranks, SPLIT_PATTERN, step=10, state=state)
    return root, ckpt, model, state


@pytest.fixture(scope="module")
def imported(source, tmp_path_factory):
    from nanochat_cli.interop.import_nanochat import import_nanochat

    home = tmp_path_factory.mktemp("nanochat-home")
    _root, ckpt, _, _ = source
    result = import_nanochat(cfg_of(home), ckpt, run="from-nanochat")  # tokenizer found at ckpt/../../tokenizer
    return home, result


def nanochat_forward(state: dict, config, ids):
    """nanochat's math (rotary by −θ, the published convention) on its raw weights: our GPT with the rotation
    turned the other way and no flip."""
    import torch

    from nanochat_cli.model import gpt as gpt_module

    original = gpt_module.apply_rotary

    def rotate_minus(x, cos, sin):
        return original(x, cos, -sin)

    model = gpt_module.GPT(config)
    model.load_state_dict({k.removeprefix("_orig_mod."): v.float() for k, v in state.items()})
    gpt_module.apply_rotary = rotate_minus
    try:
        with torch.no_grad():
            return model(torch.tensor([ids]))
    finally:
        gpt_module.apply_rotary = original


def test_imported_model_computes_what_nanochat_computed(source, imported):
    import torch

    from nanochat_cli.model.inference import load_for_inference

    _, _, model, state = source
    home, result = imported
    assert (result.run, result.phase, result.step) == ("from-nanochat", "sft", 10)  # phase from chatsft_checkpoints
    loaded = load_for_inference(cfg_of(home), "sft", run="from-nanochat", device="cpu", quiet=True)
    gen = torch.Generator().manual_seed(0)
    ids = [loaded.tokenizer.bos_id] + torch.randint(0, 700, (63,), generator=gen).tolist()
    with torch.no_grad():
        ours = loaded.model(torch.tensor([ids]))
    theirs = nanochat_forward(state, model.config, ids)
    assert float((ours - theirs).abs().max()) < 1e-4
    # and without the flip it would not: the rotary direction matters
    plain = random_gpt(700, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, seq_len=64, seed=3)
    plain.load_state_dict({k.removeprefix("_orig_mod."): v.float() for k, v in state.items()})
    with torch.no_grad():
        assert float((plain(torch.tensor([ids])) - theirs).abs().max()) > 1e-2


def test_the_import_is_an_ordinary_finished_checkpoint(source, imported):
    import tiktoken

    from nanochat_cli import checkpoint as ck
    from nanochat_cli.runs import Manifest

    root, ckpt, _, _ = source
    home, result = imported
    meta = ck.read_meta(Path(result.checkpoint))
    assert ck.verify_checkpoint(Path(result.checkpoint)) is None and ck.is_finished(meta)
    assert meta["model_config"]["n_kv_head"] == 2 and meta["model_config"]["seq_len"] == 64
    assert meta["metrics"] == {"val_bpb": 1.2345} and meta["imported_from"]["format"] == "nanochat"
    fp = meta["tokenizer"]["fingerprint"]
    assert (home / "tokenizers" / fp / "tokenizer.tiktoken").is_file() and result.tokenizer["new"]
    assert not (home / "tokenizers" / "default").exists()  # an import never changes what new runs use
    phase = Manifest.load(home / "runs" / "from-nanochat").phases["sft"]
    assert phase["status"] == "done" and phase["imported_from"]["path"] == str(ckpt)
    assert set(phase["imported_from"]["files"]) == {"model_000010.pt", "meta_000010.json", "tokenizer.pkl"}
    # the stored tokenizer gives the pickled Encoding's ids
    with open(root / "tokenizer" / "tokenizer.pkl", "rb") as f:
        enc = pickle.load(f)  # our own fixture: safe to unpickle here
    assert isinstance(enc, tiktoken.Encoding)
    from nanochat_cli.interop.hf_tokenizer import sample_texts
    from nanochat_cli.tokenizer.store import load_version

    tok = load_version(home / "tokenizers" / fp)
    for text in sample_texts():
        assert tok.encode(text) == enc.encode_ordinary(text)


def test_chat_answers_after_the_import(imported):
    home, _ = imported
    r = cli(home, "chat", "-i", "sft", "--run", "from-nanochat", "-p", "What is 2 plus 3?", "-t", "0",
            "--max-tokens", "8")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and "sft model: run from-nanochat, step 10 (finished)" in r.stderr


# ---------------------------------------------------------------------------------------------------
# Hostile and damaged inputs: one line, exit 2, nothing executed, nothing written

class Boom:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def registered_name_pickle(enc) -> bytes:
    """How tiktoken pickles a *registered* encoding: the class, then only its name as the state."""
    import tiktoken.registry

    tiktoken.registry.ENCODINGS[enc.name] = enc
    try:
        return pickle.dumps(enc)
    finally:
        del tiktoken.registry.ENCODINGS[enc.name]


def hostile_pickles(marker: Path) -> dict[str, bytes]:
    import tiktoken

    good = tiktoken.Encoding(name="x", pat_str=r"\s+|\S+", mergeable_ranks={bytes([b]): b for b in range(256)},
                             special_tokens={})
    return {
        "os.system": pickle.dumps(Boom(marker)),
        "eval": b"cbuiltins\neval\n(Vopen('" + str(marker).encode() + b"', 'w')\ntR.",
        "plain dict": pickle.dumps({"mergeable_ranks": {}}),
        "registered name": registered_name_pickle(good),
        "protocol 0": pickle.dumps(good, protocol=0),
        "truncated": pickle.dumps(good)[:100],
        "garbage": b"\x00\x01not a pickle at all",
        "persistent id": b"\x80\x04P0\n.",
    }


@pytest.mark.parametrize("kind", ["os.system", "eval", "plain dict", "registered name", "protocol 0", "truncated",
                                  "garbage", "persistent id"])
def test_hostile_or_foreign_pickles_run_nothing(tmp_path, kind):
    from nanochat_cli.interop.safe_pickle import load_encoding_state

    marker = tmp_path / "PWNED"
    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(hostile_pickles(marker)[kind])
    with pytest.raises(UsageError, match="not a plain tiktoken Encoding pickle") as e:
        load_encoding_state(path)
    assert not marker.exists() and "nothing in it was run" in e.value.message


def test_every_pickle_protocol_of_a_real_encoding_loads(tmp_path):
    import tiktoken

    from nanochat_cli.interop.safe_pickle import load_encoding_state

    ranks = dict(bpe_ranks())
    enc = tiktoken.Encoding(name="rustbpe", pat_str=r"\s+|\S+", mergeable_ranks=ranks, special_tokens={"<|bos|>": 700})
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(enc, protocol=protocol))
        state = load_encoding_state(path)
        assert state["mergeable_ranks"] == ranks and state["special_tokens"] == {"<|bos|>": 700}


def test_hostile_tokenizer_pickle_through_the_cli(source, tmp_path):
    """What check 15 plants: os.system in a __reduce__. One line, exit 2, no file touched, no run created."""
    import shutil

    root, ckpt, _, _ = source
    copy = tmp_path / "nc"
    shutil.copytree(root, copy)
    marker = tmp_path / "PWNED"
    (copy / "tokenizer" / "tokenizer.pkl").write_bytes(pickle.dumps(Boom(marker)))
    home = tmp_path / "home"
    line = one_line_error(cli(home, "import", "nanochat", str(copy / ckpt.parent.name / ckpt.name),
                              "--tokenizer", str(copy / "tokenizer"), "--phase", "base"))
    assert "asks for posix.system" in line or "asks for os.system" in line
    assert not marker.exists() and not (home / "runs").exists() and not (home / "tokenizers").exists()


def test_hostile_weights_are_refused_by_weights_only(source, tmp_path):
    import shutil

    from nanochat_cli.interop.import_nanochat import import_nanochat

    root, _ckpt, _, _ = source
    copy = tmp_path / "nc"
    shutil.copytree(root, copy)
    marker = tmp_path / "PWNED"
    model = copy / "chatsft_checkpoints" / "d2" / "model_000010.pt"
    model.write_bytes(pickle.dumps({"transformer.wte.weight": Boom(marker)}))
    with pytest.raises(UsageError, match="does not load as plain tensors.*nothing in it was run"):
        import_nanochat(cfg_of(tmp_path / "home"), model.parent)
    assert not marker.exists() and not (tmp_path / "home" / "runs").exists()


def damaged_copy(source, tmp_path, change) -> Path:
    import shutil

    root, _ckpt, _, _ = source
    copy = tmp_path / "nc"
    shutil.copytree(root, copy)
    change(copy, copy / "chatsft_checkpoints" / "d2")
    return copy / "chatsft_checkpoints" / "d2"


def _torch_save(path: Path, obj) -> None:
    import torch

    torch.save(obj, path)


def _edit_meta(ckpt: Path, **extra):
    meta = json.loads((ckpt / "meta_000010.json").read_text())
    meta["model_config"].update(extra)
    (ckpt / "meta_000010.json").write_text(json.dumps(meta))


def _rename_key(ckpt: Path, old: str, new: str):
    import torch

    state = torch.load(ckpt / "model_000010.pt", weights_only=True)
    state[new] = state.pop(old)
    torch.save(state, ckpt / "model_000010.pt")


def _add_key(ckpt: Path, name: str):
    import torch

    state = torch.load(ckpt / "model_000010.pt", weights_only=True)
    state[name] = torch.ones(2)
    torch.save(state, ckpt / "model_000010.pt")


DAMAGE = {
    "token_bytes garbage": (lambda root, ck: (root / "tokenizer" / "token_bytes.pt").write_bytes(b"PK\x03\x04junk"),
                            "token_bytes.pt does not load as a plain tensor"),
    "token_bytes wrong counts": (lambda root, ck: _torch_save(root / "tokenizer" / "token_bytes.pt",
                                                               __import__("torch").ones(700, dtype=__import__("torch").int32)),
                                 "does not match tokenizer.pkl"),
    "token_bytes wrong length": (lambda root, ck: _torch_save(root / "tokenizer" / "token_bytes.pt",
                                                               __import__("torch").zeros(256, dtype=__import__("torch").int32)),
                                 "not one integer per token id"),
    "wrong key name": (lambda root, ck: _rename_key(ck, "_orig_mod.transformer.h.0.attn.c_q.weight",
                                                    "_orig_mod.transformer.h.0.attn.q.weight"),
                       "tensors this model does not know: transformer.h.0.attn.q.weight"),
    "value embeddings": (lambda root, ck: _add_key(ck, "value_embeds.1.weight"), "value embeddings"),
    "residual scalars": (lambda root, ck: _add_key(ck, "resid_lambdas"), "per-layer residual scales"),
    "sliding windows": (lambda root, ck: _edit_meta(ck, window_pattern="SSSL"), "sliding-window attention"),
    "vocab mismatch": (lambda root, ck: _edit_meta(ck, vocab_size=800), "vocab_size 800 differs"),
    "truncated weights": (lambda root, ck: (ck / "model_000010.pt").write_bytes((ck / "model_000010.pt").read_bytes()[:5000]),
                          "does not load as plain tensors"),
    "no meta": (lambda root, ck: (ck / "meta_000010.json").unlink(), "no meta_000010.json"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_or_later_checkpoints_are_refused_by_name(source, tmp_path, damage):
    from nanochat_cli.interop.import_nanochat import import_nanochat

    change, expected = DAMAGE[damage]
    ckpt = damaged_copy(source, tmp_path, change)
    home = tmp_path / "home"
    with pytest.raises(UsageError) as e:
        import_nanochat(cfg_of(home), ckpt, run="x")
    assert e.value.exit_code == 2 and expected in e.value.one_line(), e.value.one_line()
    assert not (home / "runs").exists()


def test_a_base_dir_with_model_tags_names_them(source, tmp_path):
    from nanochat_cli.interop.import_nanochat import import_nanochat

    _root, ckpt, _, _ = source
    with pytest.raises(UsageError, match=r"holds model tags \(d2\)"):
        import_nanochat(cfg_of(tmp_path / "home"), ckpt.parent)


def test_an_existing_phase_is_never_written_over(imported, source):
    from nanochat_cli.interop.import_nanochat import import_nanochat

    home, result = imported
    before = (Path(result.checkpoint) / "model.safetensors").stat().st_mtime_ns
    with pytest.raises(UsageError, match="already has a sft model"):
        import_nanochat(cfg_of(home), source[1], run="from-nanochat")
    assert (Path(result.checkpoint) / "model.safetensors").stat().st_mtime_ns == before
