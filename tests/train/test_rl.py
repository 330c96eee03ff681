"""`nanochat train rl`: the objective on hand-computed cases, the problem stream and its state, the engine's
sampled/forced mask, held-out problems that never appear in training, the refusal without an SFT model, and an
exact resume after SIGKILL (the reward rule is swapped for one a 2-layer model can earn, so steps really learn)."""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nanochat_cli.train.rl import (ARITHMETIC_TRAIN_START, ProblemStream, advantages, pass_at_k,
                                   policy_gradient_loss)
from nanochat_cli.tasks.arithmetic import NUMBER_RANGES
from tests.conftest import cli_env


# ---------------------------------------------------------------------------------------------------
# The objective

def test_advantages_are_rewards_minus_their_mean():
    assert advantages([1.0, 0.0, 0.0, 1.0]) == [0.5, -0.5, -0.5, 0.5]
    assert advantages([1.0, 1.0, 1.0]) == [0.0, 0.0, 0.0]  # all right (or all wrong): nothing to learn
    assert advantages([0.0, 0.0, 0.0, 1.0]) == [-0.25, -0.25, -0.25, 0.75]


def test_policy_gradient_loss_on_a_hand_computed_case():
    # two samples of one problem: the first right (reward 1), the second wrong (reward 0) → A = +0.5, -0.5
    logp = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -1.5, -3.0]])
    valid = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # sample 1's last position is padding
    adv = torch.tensor(advantages([1.0, 0.0]))
    # objective = 0.5·(-1 - 2) + (-0.5)·(-0.5 - 1.5 - 3) = -1.5 + 2.5 = 1.0 over 5 valid tokens → loss -0.2
    assert policy_gradient_loss(logp, adv, valid).item() == pytest.approx(-0.2)
    # a step's gradient sums passes × problems such terms: each is divided by their count
    assert policy_gradient_loss(logp, adv, valid, passes=4).item() == pytest.approx(-0.05)


def test_policy_gradient_raises_the_better_sample_and_lowers_the_worse():
    logits = torch.zeros(2, 3, requires_grad=True)  # two one-token "completions" over a 3-token vocabulary
    tokens = torch.tensor([0, 1])
    logp = torch.log_softmax(logits, dim=-1).gather(1, tokens[:, None])  # (2, 1)
    loss = policy_gradient_loss(logp, torch.tensor(advantages([1.0, 0.0])), torch.ones(2, 1))
    loss.backward()
    # descending the loss raises log p of the rewarded token 0 in row 0 and lowers token 1 in row 1
    assert logits.grad[0, 0] < 0 and logits.grad[1, 1] > 0


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(8, 0, 1) == 0.0 and pass_at_k(8, 8, 1) == 1.0
    assert pass_at_k(8, 2, 1) == pytest.approx(2 / 8)
    assert pass_at_k(8, 2, 8) == 1.0
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))  # = 0.5


# ---------------------------------------------------------------------------------------------------
# Sampling and the problem stream

class _Scripted(torch.nn.Module):
    """Greedy-decodes a fixed script of tokens (the i-th call predicts generated token i)."""

    def __init__(self, base, script):
        super().__init__()
        self.base, self.config, self.script, self.calls = base, base.config, script, 0
        self.compute_dtype = torch.float32

    def forward(self, ids, kv_cache=None):
        logits = torch.zeros(ids.size(0), ids.size(1), self.config.vocab_size)
        logits[:, -1, self.script[min(self.calls, len(self.script) - 1)]] = 1.0
        self.calls += 1
        return logits


def test_engine_marks_calculator_output_as_forced():
    from nanochat_cli.model.engine import Engine, GenerationConfig
    from tests.tiny import byte_gpt

    model, tok = byte_gpt(seq_len=64, n_layer=1, n_embd=32, n_head=1, n_kv_head=1)
    sid = tok.special_id
    call = [sid("<|python_start|>"), *tok.encode("3*4"), sid("<|python_end|>")]
    forced = [sid("<|output_start|>"), *tok.encode("12"), sid("<|output_end|>")]
    script = [*call, *([0] * len(forced)), *tok.encode("#"), sid("<|assistant_end|>")]
    engine = Engine(_Scripted(model, script), tok)
    (out,), (mask,) = engine.generate_with_masks(tok.encode("q", prepend=tok.bos_id), 1,
                                                 GenerationConfig(max_tokens=20, temperature=0.0))
    assert out == [*call, *forced, *tok.encode("#"), sid("<|assistant_end|>")]
    assert mask == [1] * len(call) + [0] * len(forced) + [1, 1]


def test_problem_stream_state_round_trips_and_ranks_take_turns():
    a = ProblemStream(list(range(10)), rank=1, world_size=2, seed=42)
    first = [next(a) for _ in range(3)]
    assert [i for i, _ in first] == [1, 3, 5]
    state = json.loads(json.dumps(a.state_dict()))  # it goes into meta.json
    ahead = [next(a) for _ in range(4)]
    assert [i for i, _ in ahead] == [7, 9, 1, 3]  # wraps around
    b = ProblemStream(list(range(10)), rank=1, world_size=2, seed=42)
    b.load_state_dict(state)
    assert [next(b) for _ in range(4)] == ahead  # same problems, same sampling seeds


class _Rewarded:
    """A one-problem task whose reward is a fixed rule of the completion text."""

    def __init__(self, rule):
        self.rule = rule

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}

    def evaluate(self, conversation, completion):
        return int(self.rule(completion))


def _one_rl_step(rule, forwards: list) -> dict:
    """One rl_step of a byte-level model on `_Rewarded(rule)`; `forwards` collects the training forward passes.
    Returns how much each parameter moved."""
    from types import SimpleNamespace

    from nanochat_cli.config import Config
    from nanochat_cli.model.gpt import GPT
    from nanochat_cli.train.rl import rl_step
    from tests.tiny import byte_gpt

    model, tok = byte_gpt(seq_len=64, n_layer=1, n_embd=32, n_head=1, n_kv_head=1, spread=0.5)
    cfg = Config.model_validate({"rl": {"problems_per_step": 2, "samples_per_problem": 4, "device_batch_size": 2,
                                        "max_new_tokens": 8}})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for group in opt.param_groups:
        group["initial_lr"] = group["lr"]

    class Counting(GPT):  # rl_step calls type(model).forward for its training passes (sampling goes via Engine)
        def forward(self, *args, **kwargs):
            if "loss_reduction" in kwargs:
                forwards.append(1)
            return super().forward(*args, **kwargs)

    model.__class__ = Counting
    s = SimpleNamespace(cfg=cfg, info=SimpleNamespace(world_size=1, rank=0), raw_model=model, tokenizer=tok,
                        data=SimpleNamespace(train=ProblemStream(_Rewarded(rule), 0, 1, seed=3)),
                        gpt_config=model.config, device=torch.device("cpu"), optimizers=[opt], num_iterations=10)
    rl_step(s, 0)
    return {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters()}


def test_rl_step_skips_passes_with_nothing_to_learn_and_learns_from_the_rest():
    """Samples all rewarded alike have zero advantage, so a zero gradient: the step runs no training pass for
    them (most problems, once the model is mostly right) and leaves the weights as they were; samples that
    differ move them."""
    forwards: list = []
    moved = _one_rl_step(lambda completion: True, forwards)
    assert forwards == [] and max(moved.values()) == 0.0
    forwards = []
    moved = _one_rl_step(lambda completion: len(completion) % 2 == 0, forwards)
    assert len(forwards) >= 1 and max(moved.values()) > 0.0


# ---------------------------------------------------------------------------------------------------
# Held-out problems

def _prompts(task, indices) -> set[str]:
    return {task[i]["messages"][0]["content"] for i in indices}


def test_held_out_problems_never_appear_in_training():
    """cpu-small's held-out arithmetic (the RL evaluation, `eval chat -a arithmetic` and `-a arithmetic-big`) and
    spelling problems against every training problem of the profile: mid and SFT mixtures and the whole RL
    stream (big numbers there)."""
    from nanochat_cli.config_sources import load_config
    from nanochat_cli.tasks.mixtures import mixture_parts
    from nanochat_cli.train.rl import build_tasks

    cfg = load_config("cpu-small", environ={}).config
    rl_train, rl_test = build_tasks(cfg)
    assert rl_train.split == "train" and rl_test.split == "test" and rl_train.start == ARITHMETIC_TRAIN_START
    assert cfg.rl.task == "arithmetic-big" and rl_train.ranges == rl_test.ranges == NUMBER_RANGES["big"]
    steps = cfg.rl.num_iterations if cfg.rl.num_iterations > 0 else len(rl_train) // cfg.rl.problems_per_step
    used = min(len(rl_train), steps * cfg.rl.problems_per_step)
    training = _prompts(rl_train, range(used))
    from nanochat_cli.eval.chat_eval import build_task

    # RL's evaluation, and `eval chat -a arithmetic` / `-a arithmetic-big` (the speedrun's table)
    held_out_arith = (_prompts(rl_test, range(cfg.rl.eval_problems))
                      | _prompts(build_task(cfg, "arithmetic"), range(500))
                      | _prompts(build_task(cfg, "arithmetic-big"), range(500)))
    spelling_test = None
    for phase in ("mid", "sft"):
        for part in mixture_parts(cfg, phase, "train"):
            task = part.build()
            if getattr(task, "name", "") in ("arithmetic", "spellingbee"):
                assert task.split == "train"
                training |= _prompts(task, range(len(task)))
            if getattr(task, "name", "") == "spellingbee" and spelling_test is None:
                from nanochat_cli.tasks.sources import web2_words
                from nanochat_cli.tasks.spelling import SpellingBee

                spelling_test = _prompts(SpellingBee(web2_words(), 256, "test"), range(256))
    assert held_out_arith and not (held_out_arith & training)
    assert spelling_test and not (spelling_test & training)


# ---------------------------------------------------------------------------------------------------
# The command

def test_train_rl_without_an_sft_model_is_one_line_exit_3(run_cli, home):
    r = run_cli("train", "rl", "--profile", "cpu-tiny")
    assert r.returncode == 3, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "rl starts from an sft model" in r.stderr and "nanochat train sft" in r.stderr


RL_TOML = """
[rl]
num_iterations = {iters}
problems_per_step = 2
samples_per_problem = 4
device_batch_size = 2
max_new_tokens = 12
eval_every = 3
eval_problems = 2
eval_samples = 2
save_every = 2
"""

# A reward a barely trained byte-level model earns about half the time, so advantages are not all zero and every
# step changes the weights; everything else is the real command.
RUN = """
import sys
from nanochat_cli.tasks.arithmetic import Arithmetic
Arithmetic.evaluate = lambda self, conversation, completion: int("e" in completion)
from nanochat_cli.cli import main
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def sft_home(tmp_path_factory):
    """A home with a tiny base → mid → SFT run (byte tokenizer, packaged data): seconds."""
    from nanochat_cli.config_sources import load_config
    from nanochat_cli.train.loop import run_phase
    from tests.train.conftest import write_shards
    from tests.train.test_phases import chat_config_file

    root = tmp_path_factory.mktemp("rl")
    home = root / "home"
    write_shards(home)
    cfg_file = chat_config_file(root, iters=2)
    cfg_file.write_text(cfg_file.read_text().replace("eval_tokens = 128", "eval_tokens = 256") + RL_TOML.format(iters=6))
    cfg = load_config(config_file=cfg_file, flags={"home": str(home), "track.run": "tiny"}, environ={}).config
    for phase in ("base", "mid", "sft"):
        assert run_phase(cfg, phase).status == "done"
    return home, cfg_file


def _rl(home: Path, cfg_file: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUN, *args, "--config", str(cfg_file)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env({"NANOCHAT_HOME": str(home)}))


def _steps(home: Path) -> dict[int, tuple]:
    out = {}
    for line in (home / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("phase") == "rl" and "reward" in r:
            out[r["step"]] = (r["loss"], r["reward"], r["sample_tokens"])
    return out


@pytest.mark.slow
def test_rl_resumes_exactly_after_sigkill(sft_home, tmp_path):
    home, cfg_file = sft_home
    ref_home, cut_home = tmp_path / "ref", tmp_path / "cut"
    shutil.copytree(home, ref_home)
    shutil.copytree(home, cut_home)
    p = _rl(ref_home, cfg_file, "train", "rl")
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    reference = _steps(ref_home)
    assert sorted(reference) == list(range(1, 7))
    assert any(r[1] not in (0.0, 1.0) for r in reference.values()), reference  # some steps had something to learn
    assert len({r[0] for r in reference.values()}) > 1
    meta = json.loads(next((ref_home / "runs" / "tiny" / "checkpoints" / "rl").glob("step_000006/meta.json")).read_text())
    assert meta["loader"][0]["kind"] == "rl" and "rng" in meta["loader"][0]
    evals = [json.loads(x) for x in (ref_home / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if r.get("phase") == "rl" and "pass@1" in r] == [0, 3, 6]

    p = _rl(cut_home, cfg_file, "train", "rl")
    t0 = time.time()
    while time.time() - t0 < 300 and 3 not in (_steps(cut_home) if (cut_home / "runs/tiny/metrics.jsonl").exists() else {}):
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    manifest = json.loads((cut_home / "runs" / "tiny" / "manifest.json").read_text())
    assert manifest["phases"]["rl"]["status"] == "running" and manifest["phases"]["sft"]["status"] == "done"
    r = _rl(cut_home, cfg_file, "resume", "--run", "tiny")
    out, err = r.communicate(timeout=600)
    assert r.returncode == 0, err[-3000:]
    assert "resumed from" in err and "rl: done at step 6/6" in out
    assert _steps(cut_home) == reference  # bitwise: the same problems, samples, rewards and losses
