"""Tiny random models with a ByteTokenizer, and checkpoints of them saved the way training saves them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.threads import one_thread  # noqa: F401  (autouse for this folder)


def tiny_model(seq_len: int = 512, seed: int = 0):
    from tests.tiny import byte_gpt

    return byte_gpt(seq_len=seq_len, seed=seed)


def save_tiny_checkpoint(home: Path, phase: str, step: int = 10, seq_len: int = 256, run: str = "test") -> Path:
    """A finished checkpoint of a tiny model in run `run` (<home>/runs/<run>/checkpoints/<phase>/), loadable by
    load_for_inference."""
    from dataclasses import asdict

    from nanochat_cli.paths import Paths
    from nanochat_cli.checkpoint import save_checkpoint

    model, tok = tiny_model(seq_len)
    meta = {"phase": phase, "run_id": run, "model_config": asdict(model.config),
            "tokenizer": {"kind": "byte", "vocab_size": tok.vocab_size, "fingerprint": None},
            "num_iterations": step, "metrics": {}}
    return save_checkpoint(Paths(home).run_checkpoints(run, phase), step, model.state_dict(), [], meta)


@pytest.fixture
def model_tok():
    return tiny_model()


