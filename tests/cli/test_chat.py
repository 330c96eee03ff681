"""`nanochat chat`: missing checkpoint is exit 2 naming the fix; a saved checkpoint answers -p."""

from __future__ import annotations

from dataclasses import asdict

import torch

from nanochat_cli.model.gpt import GPT, GPTConfig
from nanochat_cli.paths import Paths
from nanochat_cli.tokenizer.byte_level import ByteTokenizer
from nanochat_cli.checkpoint import save_checkpoint
from tests.eval.conftest import default_depth


def test_chat_without_checkpoint_names_the_fix(run_cli):
    r = run_cli("chat", "-i", "sft", "-p", "hi")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "nanochat train sft" in r.stderr


def _save_tiny(home, phase: str, depth: int) -> None:
    tok = ByteTokenizer()
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=64, n_head=1, n_kv_head=1, seq_len=64)
    model = GPT(cfg)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.5)
    meta = {"phase": phase, "run_id": "t", "model_config": asdict(cfg), "num_iterations": 1,
            "tokenizer": {"kind": "byte", "vocab_size": tok.vocab_size, "fingerprint": None}}
    save_checkpoint(Paths(home).run_checkpoints("t", phase), 1, model.state_dict(), [], meta)


def test_chat_one_shot_answers_from_a_checkpoint(run_cli, home):
    _save_tiny(home, "sft", default_depth())
    r = run_cli("chat", "-i", "sft", "-p", "Hello, who are you?", "--temperature", "0", "--max-tokens", "12")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() != ""


def test_chat_interactive_session_handles_commands_and_eof(run_cli, home):
    _save_tiny(home, "sft", default_depth())
    r = run_cli("chat", "--max-tokens", "5", input="hello\n/clear\nagain\n")  # ends with EOF (Ctrl-D)
    assert r.returncode == 0, r.stderr
    assert "conversation cleared" in r.stdout and r.stdout.count("model>") == 2


def test_chat_base_completion(run_cli, home):
    _save_tiny(home, "base", default_depth())
    r = run_cli("chat", "-i", "base", "-p", "The capital", "-t", "0", "--max-tokens", "8")
    assert r.returncode == 0, r.stderr


def test_ctrl_c_mid_reply_keeps_the_session_usable():
    """A reply stopped by Ctrl-C leaves no unanswered user turn: the next message still renders."""
    import pytest

    from nanochat_cli.chat_session import ChatSession
    from nanochat_cli.model.engine import GenerationConfig
    from nanochat_cli.model.inference import LoadedModel

    torch.manual_seed(0)
    tok = ByteTokenizer()
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=32, n_head=2, n_kv_head=2, seq_len=256))
    model.init_weights()
    model.eval()
    session = ChatSession(LoadedModel(model, tok, {}, 1, "x", "sft"), GenerationConfig(max_tokens=4, temperature=0.0))

    def interrupt(_piece):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.reply("hello", on_text=interrupt)
    assert session.messages == []
    session.reply("hello again")
    assert [m["role"] for m in session.messages] == ["user", "assistant"]
