"""Chat evals: categorical scoring by letter logits, generative by the engine, ChatCORE centering; the CLI
on a tiny checkpoint with the packaged tasks records its results."""

from __future__ import annotations

import json

import pytest
import torch

from nanochat_cli.eval import chat_eval
from nanochat_cli.tokenizer.byte_level import ByteTokenizer
from tests.eval.ckpt_fixture import save_tiny_checkpoint, write_config


class _LetterModel(torch.nn.Module):
    """Always puts the highest logit on byte `want` at the last position."""

    def __init__(self, want: str, vocab: int):
        super().__init__()
        from nanochat_cli.model.gpt import GPTConfig

        self.config = GPTConfig(vocab, 1, 8, 1, 1, 4096)
        self.want, self.vocab = ord(want), vocab

    def forward(self, idx, kv_cache=None):
        out = torch.zeros(idx.size(0), idx.size(1), self.vocab)
        out[:, -1, self.want] = 5.0
        out[:, -1, ord("Z")] = 9.0  # not an allowed letter: must be ignored
        return out


def test_categorical_scores_only_allowed_letters():
    from nanochat_cli.tasks.choice import mc_conversation

    tok = ByteTokenizer()
    conv = mc_conversation("2+2?", list("ABC"), ["3", "4", "5"], "B")

    class T:
        eval_type = "categorical"

        def evaluate(self, c, completion):
            return int(completion == "B")

    assert chat_eval.score_categorical(_LetterModel("B", tok.vocab_size), tok, T(), conv, "cpu") == 1
    assert chat_eval.score_categorical(_LetterModel("C", tok.vocab_size), tok, T(), conv, "cpu") == 0


def test_baselines_match_nanochat():
    assert chat_eval.BASELINES["ARC-Easy"] == chat_eval.BASELINES["MMLU"] == 0.25
    assert chat_eval.BASELINES["GSM8K"] == chat_eval.BASELINES["HumanEval"] == chat_eval.BASELINES["SpellingBee"] == 0


def test_cli_eval_chat_packaged(run_cli, home, tmp_path):
    save_tiny_checkpoint(home, "sft")
    cfg = tmp_path / "c.toml"
    cfg.write_text(write_config(tmp_path).read_text() + '\n[sft]\nmixture = "packaged"\n')
    r = run_cli("eval", "chat", "-i", "sft", "-c", str(cfg), "--depth", "2", "--max-problems", "2", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["suite"] == "chat-mini-suite" and set(res["tasks"]) == set(chat_eval.PACKAGED_TASKS)
    assert "chatcore" not in res and res["chat_mini_suite"] == pytest.approx(
        sum(t["centered"] for t in res["tasks"].values()) / 4)
    m = json.loads((home / "runs" / "test-run" / "manifest.json").read_text())
    assert "chat/sft" in m["evals"]
    r = run_cli("eval", "chat", "-i", "base", "-c", str(cfg), "--depth", "2")
    assert r.returncode == 2 and "Traceback" not in r.stderr
