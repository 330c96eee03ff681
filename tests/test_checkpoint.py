"""Checkpoints: round trip (weights, optimizer, RNG), keep-last-K, atomicity, and a fallback past every kind of
damaged or hostile file (never a crash, never a lost good checkpoint)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from nanochat_cli.errors import UsageError
from nanochat_cli import checkpoint as ck
from nanochat_cli.paths import sha256_file


def _model_and_opt(seed=0):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m(torch.randn(3, 8)).sum().backward()
    opt.step()
    return m, opt


def _save(d, step, m, opt, keep=None, **meta):
    return ck.save_checkpoint(d, step, m.state_dict(), [opt.state_dict()], {"phase": "base", **meta},
                              keep_last=keep)


def test_round_trip_weights_optimizer_and_meta(tmp_path):
    m, opt = _model_and_opt()
    path = _save(tmp_path, 7, m, opt, loader=[{"pos": 3}])
    assert path.name == "step_000007" and sorted(p.name for p in path.iterdir()) == [
        "meta.json", "model.safetensors", "optim_rank0.pt"]
    c = ck.load_checkpoint(tmp_path)
    assert c.step == 7 and c.meta["loader"] == [{"pos": 3}] and c.meta["phase"] == "base"
    for k, v in m.state_dict().items():
        assert torch.equal(c.model_state[k], v)
    m2, opt2 = _model_and_opt(seed=1)
    opt2.load_state_dict(c.optim_state[0])
    for a, b in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_rng_states_round_trip_through_json():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = json.loads(json.dumps(ck.rng_state()))
    want = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ck.set_rng_state(state)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert want[0] == got[0] and want[1] == got[1] and torch.equal(want[2], got[2])


def test_keep_last_purges_oldest(tmp_path):
    m, opt = _model_and_opt()
    for s in (1, 2, 3, 4):
        _save(tmp_path, s, m, opt, keep=2)
    assert ck.list_steps(tmp_path) == [3, 4]


@pytest.mark.parametrize("damage", ["truncate_weights", "delete_optim", "delete_meta", "flip_byte", "torn_meta"])
def test_corrupt_latest_falls_back_to_previous_with_a_message(tmp_path, capsys, damage):
    m, opt = _model_and_opt()
    _save(tmp_path, 10, m, opt)
    bad = _save(tmp_path, 20, m, opt)
    if damage == "truncate_weights":
        w = bad / "model.safetensors"
        w.write_bytes(w.read_bytes()[:-10])
    elif damage == "delete_optim":
        (bad / "optim_rank0.pt").unlink()
    elif damage == "delete_meta":
        (bad / "meta.json").unlink()
    elif damage == "flip_byte":
        w = bad / "model.safetensors"
        b = bytearray(w.read_bytes())
        b[-1] ^= 0xFF
        w.write_bytes(bytes(b))
    elif damage == "torn_meta":
        mp = bad / "meta.json"
        mp.write_text(mp.read_text()[:40])
    assert ck.latest_valid_step(tmp_path) == 10
    err = capsys.readouterr().err
    assert "step_000020" in err and "previous valid one, step 10" in err
    assert ck.load_checkpoint(tmp_path).step == 10
    with pytest.raises(UsageError, match="not usable"):
        ck.load_checkpoint(tmp_path, step=20)


def test_leftover_temp_dir_is_not_a_checkpoint(tmp_path):
    m, opt = _model_and_opt()
    _save(tmp_path, 5, m, opt)
    (tmp_path / ".step_000006.tmp").mkdir()
    (tmp_path / ".step_000006.tmp" / "model.safetensors").write_bytes(b"partial")
    assert ck.latest_valid_step(tmp_path) == 5
    _save(tmp_path, 6, m, opt)  # a later save of that step cleans the leftover and completes
    assert ck.latest_valid_step(tmp_path) == 6 and not (tmp_path / ".step_000006.tmp").exists()


def test_no_checkpoint_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no complete checkpoint"):
        ck.load_checkpoint(tmp_path / "nothing")


def test_optimizer_file_loads_with_weights_only(tmp_path):
    m, opt = _model_and_opt()
    path = _save(tmp_path, 1, m, opt)
    torch.load(path / "optim_rank0.pt", weights_only=True)  # raises if anything beyond tensors/containers


# ---------------------------------------------------------------------------------------------------
# Damaged and hostile files: each falls back to the previous valid checkpoint with a warning

def _rewrite_meta(path, change, rehash=False):
    meta = json.loads((path / "meta.json").read_text())
    meta = change(meta)
    if rehash and isinstance(meta, dict):
        meta["meta_sha256"] = ck.meta_digest(meta)
    (path / "meta.json").write_text(json.dumps(meta))


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def _forge_optimizer(path):
    """An optimizer file that is a pickle of an arbitrary object, with meta.json hashes updated to match (what
    a hostile or buggy tool would produce): weights_only loading refuses it."""
    import pickle

    (path / "optim_rank0.pt").write_bytes(pickle.dumps(_Evil()))
    _rewrite_meta(path, lambda m: {**m, "files": {**m["files"], "optim_rank0.pt": sha256_file(path / "optim_rank0.pt")}},
                  rehash=True)


def _forge_safetensors_header(path):
    """A safetensors file whose 8-byte header length claims 2^62 bytes (hashes updated to match)."""
    import struct

    w = path / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(struct.pack("<Q", 1 << 62) + data[8:])
    _rewrite_meta(path, lambda m: {**m, "files": {**m["files"], "model.safetensors": sha256_file(w)}}, rehash=True)


HOSTILE = {
    "meta_is_a_list": lambda p: _rewrite_meta(p, lambda m: [m]),
    "meta_edited_after_save": lambda p: _rewrite_meta(p, lambda m: {**m, "step": 999}),
    "meta_lacks_files_rehashed": lambda p: _rewrite_meta(p, lambda m: {k: v for k, v in m.items() if k != "files"},
                                                          rehash=True),
    "garbage_rng_rehashed": lambda p: _rewrite_meta(p, lambda m: {**m, "rng": [{"python": "x", "numpy": 1}]},
                                                    rehash=True),
    "rng_wrong_torch_size": lambda p: _rewrite_meta(p, lambda m: {**m, "rng": [{**m["rng"][0], "torch": "AAAA"}]},
                                                    rehash=True),
    "files_escape_the_dir": lambda p: _rewrite_meta(p, lambda m: {**m, "files": {"../../x": "0" * 64,
                                                                                 **m["files"]}}, rehash=True),
    "optimizer_not_plain_tensors": _forge_optimizer,
    "safetensors_header_claims_2_62_bytes": _forge_safetensors_header,
    "meta_not_utf8": lambda p: (p / "meta.json").write_bytes(b"\xff\xfe{"),
    "meta_deeply_nested": lambda p: (p / "meta.json").write_text("[" * 100000 + "]" * 100000),
}


@pytest.mark.parametrize("damage", sorted(HOSTILE))
def test_hostile_or_damaged_newest_falls_back_to_the_previous_one(tmp_path, capsys, damage):
    m, opt = _model_and_opt()
    rng = [json.loads(json.dumps(ck.rng_state()))]
    _save(tmp_path, 10, m, opt, loader=[{"pos": 1}], rng=rng)
    bad = _save(tmp_path, 20, m, opt, loader=[{"pos": 2}], rng=rng)
    HOSTILE[damage](bad)
    c = ck.load_checkpoint(tmp_path)
    assert c.step == 10 and c.meta["loader"] == [{"pos": 1}]
    err = capsys.readouterr().err
    assert "step_000020" in err and "step 10" in err and "pwned" not in err
    with pytest.raises(UsageError, match="not usable"):
        ck.load_checkpoint(tmp_path, step=20)


def test_only_damaged_checkpoints_is_one_usage_error(tmp_path):
    m, opt = _model_and_opt()
    bad = _save(tmp_path, 3, m, opt)
    _rewrite_meta(bad, lambda meta: [meta])
    with pytest.raises(UsageError, match="no complete checkpoint"):
        ck.load_checkpoint(tmp_path)


def test_accept_hook_rejects_a_meta_like_damage(tmp_path, capsys):
    m, opt = _model_and_opt()
    _save(tmp_path, 1, m, opt, model_config={"n_layer": 2})
    _save(tmp_path, 2, m, opt, model_config={"n_layer": 2, "value_embeds": True})
    c = ck.load_checkpoint(tmp_path, accept=lambda meta: "unknown key" if "value_embeds" in meta["model_config"] else None)
    assert c.step == 1 and "unknown key" in capsys.readouterr().err


def test_format_1_checkpoints_without_a_self_hash_still_load(tmp_path):
    m, opt = _model_and_opt()
    path = _save(tmp_path, 4, m, opt)
    _rewrite_meta(path, lambda meta: {**{k: v for k, v in meta.items() if k != "meta_sha256"}, "format_version": 1})
    assert ck.load_checkpoint(tmp_path).step == 4


def test_keep_last_counts_only_valid_checkpoints(tmp_path):
    m, opt = _model_and_opt()
    for s in (1, 2):
        _save(tmp_path, s, m, opt, keep=2)
    w = tmp_path / "step_000002" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-4])  # the newest becomes torn
    ck._VERIFIED.clear()
    _save(tmp_path, 3, m, opt, keep=2)
    # 3 and 1 are the two valid ones; the torn 2 sits between them and does not count (kept: newer than 1)
    assert ck.list_steps(tmp_path) == [1, 2, 3]
    _save(tmp_path, 4, m, opt, keep=2)
    assert ck.list_steps(tmp_path) == [3, 4]


def test_purge_removes_stale_temp_dirs_of_killed_saves(tmp_path):
    m, opt = _model_and_opt()
    (tmp_path / ".step_000009.tmp").mkdir(parents=True)
    (tmp_path / ".step_000007.old").mkdir()
    _save(tmp_path, 1, m, opt, keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000001"]
