"""Chat evals: categorical scoring by letter logits, generative by greedy decoding, the mini-suite on a
tiny random model, suite selection, and `eval chat` through the CLI on a saved checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from nanochat_cli.config_sources import load_config
from nanochat_cli.errors import UsageError
from nanochat_cli.eval import chat_eval
from nanochat_cli.tasks.quiz import Quiz
from tests.eval.conftest import save_tiny_checkpoint


class LetterOracle(torch.nn.Module):
    """Fake model: at every position the logit of byte `letter` is highest among A–E."""

    def __init__(self, vocab, seq_len=512, prefer="B"):
        super().__init__()
        self.vocab, self.prefer = vocab, prefer
        self.config = type("C", (), {"seq_len": seq_len})()

    def forward(self, idx):
        logits = torch.zeros(*idx.shape, self.vocab)
        logits[..., ord(self.prefer)] = 5.0
        return logits


def test_categorical_takes_argmax_over_allowed_letters(home):
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    tok = ByteTokenizer()
    task = Quiz(40, "test")
    correct, chance = chat_eval.run_categorical(LetterOracle(tok.vocab_size), tok, task, list(range(40)), 8, "cpu")
    expect = sum(task[i]["messages"][-1]["content"] == "B" for i in range(40))
    assert correct == expect and 0 < correct < 40
    assert abs(chance - sum(1 / len(task[i]["letters"]) for i in range(40))) < 1e-9


def test_suite_selection(home):
    cfg = load_config(profile="cpu-tiny").config
    assert chat_eval.resolve_suite(cfg) == "mini"
    assert chat_eval.resolve_suite(cfg, "GSM8K") == "chatcore"
    cfg.sft.mixture = "hub"
    assert chat_eval.resolve_suite(cfg) == "chatcore"
    with pytest.raises(UsageError):
        chat_eval.resolve_suite(cfg, "nope")


def test_mini_suite_on_tiny_model(home, model_tok):
    model, tok = model_tok
    cfg = load_config(profile="cpu-tiny").config
    res = chat_eval.evaluate_chat_model(model, tok, cfg, list(chat_eval.MINI_TASKS), "mini", "cpu",
                                        max_problems=6, max_tokens=8)
    assert res["score_name"] == "mini-suite score" and res["score"] is not None
    assert set(res["tasks"]) == set(chat_eval.MINI_TASKS)
    for name, r in res["tasks"].items():
        assert r["problems"] == 6 and 0 <= r["accuracy"] <= 1
    assert res["tasks"]["quiz"]["type"] == "categorical" and 0.2 < res["tasks"]["quiz"]["baseline"] < 0.34
    from nanochat_cli.eval.sandbox import isolation

    assert res["tasks"]["humaneval"]["sandbox"].startswith(isolation().name)  # how contained its code ran


def test_eval_chat_cli_json(run_cli, home):
    save_tiny_checkpoint(home, "sft", seq_len=256)
    r = run_cli("eval", "chat", "-i", "sft", "-a", "quiz", "--json", env={"NANOCHAT_EVAL__CHAT_MAX_PROBLEMS": "5",
                                                                          "NANOCHAT_TRAIN__THREADS": "1"})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["tasks"]["quiz"]["problems"] == 5 and doc["source"] == "sft" and doc["step"] == 10


def test_eval_chat_without_checkpoint_is_exit_2(run_cli, home):
    r = run_cli("eval", "chat", "-i", "mid", "-a", "quiz")
    assert r.returncode == 2 and "nanochat train mid" in r.stderr
