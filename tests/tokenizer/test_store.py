"""Tokenizer versions on disk: the fingerprint definition, write-once version directories, the default file,
lookup by a version fingerprint or an old ranks sha256, listing, `use`, and every kind of damaged file turned
into one PreflightError line (never a traceback)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from nanochat_cli.config_sources import load_config
from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.paths import Paths
from nanochat_cli.tokenizer import list_tokenizers, load_tokenizer, store, tokenizer_matches
from nanochat_cli.tokenizer.bpe import SPLIT_PATTERN, BPETokenizer, ranks_to_file_bytes
from nanochat_cli.tokenizer.byte_level import ByteTokenizer
from nanochat_cli.tokenizer.special import SPECIAL_TOKENS
from tests.tokenizer.legacy_home import TEXT, small_ranks

VOCAB = 400


@pytest.fixture(scope="module")
def ranks():
    return small_ranks(VOCAB)


def cfg_for(home, **flags):
    return load_config(flags={"home": str(home), "tokenizer.vocab_size": VOCAB, **flags}, environ={}).config


def add_version(home, ranks, default=True, **extra) -> str:
    """Store `ranks` as a version the way `tokenizer train` does; returns its fingerprint."""
    paths = Paths(home)
    data = ranks_to_file_bytes(ranks)
    meta = store.new_meta(data, len(ranks), SPLIT_PATTERN, {"source": "test", **extra})
    store.install_version(paths, meta, {store.TOKEN_FILE: data})
    if default:
        store.set_default(paths, meta["fingerprint"])
    return meta["fingerprint"]


def test_fingerprint_is_sha256_of_the_canonical_encoding_content(tmp_path, ranks):
    fp = add_version(tmp_path, ranks)
    d = Paths(tmp_path).tokenizer_dir(fp)
    meta = json.loads((d / "tokenizer.json").read_text())
    ranks_sha = hashlib.sha256((d / "tokenizer.tiktoken").read_bytes()).hexdigest()
    by_hand = json.dumps({"kind": "bpe", "pattern": SPLIT_PATTERN, "ranks_sha256": ranks_sha,
                          "special_tokens": {n: len(ranks) + i for i, n in enumerate(SPECIAL_TOKENS)}},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert fp == hashlib.sha256(by_hand.encode("ascii")).hexdigest() == meta["fingerprint"]
    assert meta["ranks_sha256"] == ranks_sha and meta["format"] == 2 and meta["vocab_size"] == VOCAB
    # Statistics and dates are not part of it: the same ranks trained on another day are the same version.
    assert add_version(tmp_path / "other", ranks, seconds=99.0, created="2020-01-01T00:00:00Z") == fp
    # The pattern is: the same ranks split differently give different ids, so another version.
    other = store.new_meta(ranks_to_file_bytes(ranks), len(ranks), SPLIT_PATTERN.replace("{1,2}", "{1,3}"), {})
    assert other["fingerprint"] != fp and other["ranks_sha256"] == ranks_sha


def test_a_version_is_written_once_and_never_modified(tmp_path, ranks):
    fp = add_version(tmp_path, ranks)
    paths = Paths(tmp_path)
    d = paths.tokenizer_dir(fp)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in d.iterdir()}
    meta = json.loads((d / "tokenizer.json").read_text())
    assert store.install_version(paths, {**meta, "seconds": 1.0}, {store.TOKEN_FILE: b"ignored"}) == (d, False)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in d.iterdir()} == before
    assert not [p for p in paths.tokenizers.iterdir() if p.name.startswith(".tmp-")]  # no temp dir left
    # A damaged directory under the same name is set aside (kept), and the good copy takes its place.
    (d / "tokenizer.tiktoken").write_bytes(b"torn")
    data = ranks_to_file_bytes(ranks)
    assert store.install_version(paths, meta, {store.TOKEN_FILE: data}) == (d, True)
    (aside,) = paths.damaged_tokenizers.iterdir()
    assert aside.name.startswith(fp) and (aside / "tokenizer.tiktoken").read_bytes() == b"torn"
    assert load_tokenizer(cfg_for(tmp_path)).fingerprint == fp


def test_load_default_and_exact_versions(tmp_path, ranks):
    first = add_version(tmp_path, ranks)
    bigger = small_ranks(VOCAB + 100)
    second = add_version(tmp_path, bigger)  # now the default, with another vocab size
    cfg = cfg_for(tmp_path)
    with pytest.raises(PreflightError, match=f"default tokenizer {second[:12]} has 500 tokens but "
                                             "tokenizer.vocab_size is 400"):
        load_tokenizer(cfg)
    assert load_tokenizer(cfg_for(tmp_path, **{"tokenizer.vocab_size": 500})).fingerprint == second
    # An exact version loads whatever cfg.tokenizer.vocab_size says (a checkpoint knows its own tokenizer).
    tok = load_tokenizer(cfg, first)
    assert tok.fingerprint == first and tok.vocab_size == VOCAB
    assert load_tokenizer(cfg, second).vocab_size == 500
    # The old-style fingerprint (sha256 of the ranks file) of checkpoints from before versions finds it too.
    old_style = hashlib.sha256(ranks_to_file_bytes(ranks)).hexdigest()
    assert load_tokenizer(cfg, old_style).fingerprint == first
    assert tokenizer_matches(tok, first) and tokenizer_matches(tok, old_style)
    assert not tokenizer_matches(tok, second) and not tokenizer_matches(tok, None)
    assert tokenizer_matches(ByteTokenizer(), None) and not tokenizer_matches(ByteTokenizer(), first)
    assert load_tokenizer(cfg_for(tmp_path, **{"tokenizer.kind": "byte"}), first).vocab_size == 256 + 9
    missing = "ab" * 32
    with pytest.raises(PreflightError) as e:
        load_tokenizer(cfg, missing, used_by="the base checkpoint runs/x/step_000010")
    line = e.value.one_line()
    assert (f"the tokenizer {missing[:12]} that the base checkpoint runs/x/step_000010 was trained with is not in "
            f"{tmp_path / 'tokenizers'}") in line and "nanochat tokenizer list" in line
    with pytest.raises(PreflightError, match="not in"):
        load_tokenizer(cfg, "../../etc")  # not a fingerprint: never used as a path


def test_ids_are_the_ones_the_ranks_give(tmp_path, ranks):
    fp = add_version(tmp_path, ranks)
    tok = load_tokenizer(cfg_for(tmp_path), fp)
    ref = BPETokenizer(ranks)
    assert ref.fingerprint == fp and ref.ranks_sha256 == tok.ranks_sha256
    for text in (TEXT, "안녕하세요 🙂 \x00", "<|bos|>"):
        assert tok.encode(text) == ref.encode(text) and tok.decode(tok.encode(text)) == text


def _edit_meta(d, **changes):
    meta = json.loads((d / "tokenizer.json").read_text())
    meta.update(changes)
    (d / "tokenizer.json").write_text(json.dumps(meta))


def _rehash(home, d, data: bytes | None = None, **changes):
    """Edit a version and make its hashes and directory name consistent again (a careful hand edit), so the
    check after the hashes is what fails."""
    meta = json.loads((d / "tokenizer.json").read_text())
    if data is not None:
        (d / "tokenizer.tiktoken").write_bytes(data)
        meta["ranks_sha256"] = hashlib.sha256(data).hexdigest()
    meta.update(changes)
    meta["fingerprint"] = store.fingerprint_of(meta)
    (d / "tokenizer.json").write_text(json.dumps(meta))
    new = d.with_name(meta["fingerprint"])
    d.rename(new)
    store.set_default(Paths(home), meta["fingerprint"])


BYTES = ranks_to_file_bytes({bytes([b]): b for b in range(256)})


@pytest.mark.parametrize("damage, needle", [
    (lambda h, d: (d / "tokenizer.json").write_text("{"), "tokenizer.json: is not valid JSON"),
    (lambda h, d: (d / "tokenizer.json").write_text("[1, 2]"), "tokenizer.json: is not a JSON object (found list)"),
    (lambda h, d: (d / "tokenizer.json").write_bytes(b"\xff\xfe{"), "cannot be read (UnicodeDecodeError)"),
    (lambda h, d: _edit_meta(d, pattern=None) or _strip(d, "pattern", "fingerprint"),
     "tokenizer.json: lacks fingerprint, pattern"),
    (lambda h, d: _edit_meta(d, vocab_size="400"), "has the wrong type for vocab_size"),
    (lambda h, d: _edit_meta(d, pattern="(\\p{L}+"), "tokenizer.json: the split pattern does not compile"),
    (lambda h, d: _edit_meta(d, pattern="\\p{L}*"), "the split pattern matches the empty string"),
    (lambda h, d: _edit_meta(d, pattern="\\p{L}+|\\s+"), "does not cover all text"),
    (lambda h, d: _edit_meta(d, special_tokens={**{n: 391 + i for i, n in enumerate(SPECIAL_TOKENS)},
                                                "<|bos|>": 392, "<|user_start|>": 391}),
     "tokenizer.json: special tokens disagree"),
    (lambda h, d: _edit_meta(d, kind="sentencepiece"), "kind is 'sentencepiece'"),
    (lambda h, d: _edit_meta(d, pattern=SPLIT_PATTERN.replace("{1,2}", "{1,3}")),
     "tokenizer.json: its content does not match its fingerprint"),
    (lambda h, d: (d / "tokenizer.tiktoken").write_bytes((d / "tokenizer.tiktoken").read_bytes()[:-20]),
     "tokenizer.tiktoken: does not match ranks_sha256"),
    (lambda h, d: (d / "tokenizer.tiktoken").unlink(), "tokenizer.tiktoken: is missing"),
    (lambda h, d: (d / "tokenizer.json").unlink(), "tokenizer.json: is missing"),
    (lambda h, d: _rehash(h, d, b"not base64 !!\n"), "tokenizer.tiktoken: is not a tiktoken file"),
    (lambda h, d: _rehash(h, d, BYTES.replace(b"QQ== 65", b"QQ== 66")), "ranks are not 0..n-1"),
    (lambda h, d: _rehash(h, d, vocab_size=400, special_tokens={n: 391 + i for i, n in enumerate(SPECIAL_TOKENS)},
                          data=BYTES), "vocab_size 400 disagrees with the 256 ranks"),
])
def test_damaged_version_is_one_preflight_line(tmp_path, ranks, damage, needle):
    fp = add_version(tmp_path, ranks)
    damage(tmp_path, Paths(tmp_path).tokenizer_dir(fp))
    with pytest.raises(PreflightError) as e:
        load_tokenizer(cfg_for(tmp_path))
    line = e.value.one_line()
    assert needle in line and str(tmp_path / "tokenizers") in line and "\n" not in line, line
    assert "nanochat tokenizer train" in e.value.fix
    (v,) = list_tokenizers(Paths(tmp_path))  # listing a damaged version shows the problem, never crashes
    assert v.problem and v.vocab_size is None


def _strip(d, *keys):
    meta = json.loads((d / "tokenizer.json").read_text())
    for k in keys:
        meta.pop(k)
    (d / "tokenizer.json").write_text(json.dumps(meta))


def test_directory_must_hold_the_version_it_is_named_after(tmp_path, ranks):
    fp = add_version(tmp_path, ranks)
    other = "cd" * 32
    Paths(tmp_path).tokenizer_dir(fp).rename(Paths(tmp_path).tokenizer_dir(other))
    store.set_default(Paths(tmp_path), other)
    with pytest.raises(PreflightError, match=f"holds version {fp[:12]}, not the {other[:12]}"):
        load_tokenizer(cfg_for(tmp_path))


@pytest.mark.parametrize("content, needle", [
    ("not a fingerprint\n", "does not name a tokenizer version"),
    ("ab" * 32 + "\n", "names version abababababab, which is not in"),
])
def test_damaged_default_file(tmp_path, ranks, content, needle):
    add_version(tmp_path, ranks)
    Paths(tmp_path).default_tokenizer.write_text(content)
    with pytest.raises(PreflightError) as e:
        load_tokenizer(cfg_for(tmp_path))
    assert needle in e.value.message and "nanochat tokenizer use" in e.value.fix


def test_no_default(tmp_path, ranks):
    with pytest.raises(PreflightError) as e:
        load_tokenizer(cfg_for(tmp_path))
    assert e.value.message == f"no trained tokenizer in {tmp_path / 'tokenizers'}"
    assert e.value.fix == "nanochat tokenizer train"
    add_version(tmp_path, ranks, default=False)
    with pytest.raises(PreflightError, match=r"no default tokenizer in .* \(1 stored\)"):
        load_tokenizer(cfg_for(tmp_path))


def test_list_and_use(tmp_path, ranks):
    paths = Paths(tmp_path)
    assert list_tokenizers(paths) == []
    first = add_version(tmp_path, ranks, created="2026-01-01T00:00:00Z")
    second = add_version(tmp_path, small_ranks(VOCAB + 100), created="2026-02-01T00:00:00Z")
    (paths.tokenizers / f".tmp-{'0' * 12}-x").mkdir()  # a crashed write: not a version
    store.save_eval(paths, first, {"texts": []})
    versions = list_tokenizers(paths)
    assert [(v.fingerprint, v.vocab_size, v.default, v.has_eval, v.problem) for v in versions] == [
        (first, VOCAB, False, True, None), (second, VOCAB + 100, True, False, None)]
    assert versions[0].size_bytes > len(ranks_to_file_bytes(ranks)) and versions[0].created == "2026-01-01T00:00:00Z"
    assert json.loads(json.dumps(versions[0].to_json()))["fingerprint"] == first
    assert store.use_version(paths, first[:8].upper()).fingerprint == first
    assert store.read_default(paths) == first
    for bad in ("abc", "zz" * 5, "0" * 10):
        with pytest.raises(UsageError):
            store.use_version(paths, bad)
    # A damaged version never becomes the default.
    (paths.tokenizer_dir(second) / "tokenizer.tiktoken").write_bytes(b"x")
    with pytest.raises(PreflightError):
        store.use_version(paths, second)
    assert store.read_default(paths) == first


def test_eval_is_found_for_new_and_old_fingerprints(tmp_path, ranks):
    paths = Paths(tmp_path)
    fp = add_version(tmp_path, ranks)
    assert store.eval_for(paths, fp) is None
    store.save_eval(paths, fp, {"texts": [1]})
    old_style = hashlib.sha256(ranks_to_file_bytes(ranks)).hexdigest()
    assert store.eval_for(paths, fp) == store.eval_for(paths, old_style) == {"texts": [1]}
    assert store.eval_for(paths, "ef" * 32) is None and store.eval_for(paths, None) is None
    shutil.rmtree(paths.tokenizers)
    assert store.eval_for(paths, fp) is None


def test_load_recorded_tokenizer_follows_the_checkpoint_not_the_default(tmp_path, ranks):
    from nanochat_cli.tokenizer import load_recorded_tokenizer

    first = add_version(tmp_path, ranks)
    add_version(tmp_path, small_ranks(VOCAB + 100))  # the default now, another vocab size
    cfg = cfg_for(tmp_path)
    old_style = hashlib.sha256(ranks_to_file_bytes(ranks)).hexdigest()
    for fp in (first, old_style):
        rec = {"kind": "bpe", "vocab_size": VOCAB, "fingerprint": fp}
        assert load_recorded_tokenizer(cfg, rec, "the base checkpoint").fingerprint == first
    assert load_recorded_tokenizer(cfg, {"kind": "byte", "vocab_size": 265, "fingerprint": None}).vocab_size == 265
    assert load_recorded_tokenizer(cfg_for(tmp_path, **{"tokenizer.vocab_size": 500}), None).vocab_size == 500
    with pytest.raises(PreflightError, match="that the mid checkpoint was trained with is not in"):
        load_recorded_tokenizer(cfg, {"kind": "bpe", "vocab_size": VOCAB, "fingerprint": "ee" * 32},
                                "the mid checkpoint")
