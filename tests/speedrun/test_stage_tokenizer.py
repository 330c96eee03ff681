"""The speedrun's tokenizer stage: keeps a default tokenizer of the configured vocab size (a rerun must not
change the ids), trains one otherwise (a new version; the others stay), and keeps its eval in the run and
beside the version."""

from __future__ import annotations

import json

from nanochat_cli.config_sources import load_config
from nanochat_cli.paths import Paths
from nanochat_cli.speedrun import stage_tokenizer
from nanochat_cli.tokenizer import list_tokenizers, store
from tests.tokenizer.corpus import install_corpus


def test_keeps_a_default_of_the_configured_size_else_trains(home):
    install_corpus(home)
    small = {"home": str(home), "tokenizer.vocab_size": 512, "tokenizer.train_chars": 200_000}
    cfg = load_config(flags=small, environ={}).config
    first = stage_tokenizer(cfg, "r1")["train"]
    assert first["train_chars"] == 200_000 and len(first["fingerprint"]) == 64
    assert stage_tokenizer(cfg, "r2")["train"] == {"kept": True, "vocab_size": 512,
                                                  "fingerprint": first["fingerprint"]}
    paths = Paths(home)
    for run in ("r1", "r2"):
        assert json.loads((paths.run_dir(run) / "tokenizer_eval.json").read_text())["fingerprint"] == \
            first["fingerprint"]
    assert store.eval_for(paths, first["fingerprint"])["fingerprint"] == first["fingerprint"]
    # Another default of another size: the stage trains the configured one (same data: the same version,
    # which becomes the default again); the other version stays.
    other = stage_tokenizer(load_config(flags={**small, "tokenizer.vocab_size": 600}, environ={}).config, "r3")
    again = stage_tokenizer(cfg, "r4")["train"]
    assert again["fingerprint"] == first["fingerprint"] and "kept" not in again
    assert {v.fingerprint for v in list_tokenizers(paths)} == {first["fingerprint"], other["train"]["fingerprint"]}
    assert store.read_default(paths) == first["fingerprint"]
