"""Reinforcement learning on problems with a checkable answer (nanochat's chat_rl at 10231df) as a phase of the
one training loop: `rl_data` hands the loop a problem stream, its own optimizer step and its own evaluation;
run, lock, checkpoints, exact resume, signals and tracking are the loop's.

A step: each rank takes problems_per_step / world problems from its stream. For each, the Engine samples
samples_per_problem completions (KV cache, one shared prefill per sampling batch, calculator calls executed and
their outputs forced, seeds drawn from the stream's RNG). Reward = 1 for the right final answer, else 0;
advantage = reward − the mean over that problem's samples (no division by σ, no KL to a reference model, no
PPO ratio/clip: the samples come from the current weights, so the step is on-policy — nanochat's "GRPO" that
is really REINFORCE with a per-problem baseline). Loss = −Σ advantage·log p over the tokens the model sampled
(prompt, forced calculator output and padding masked), divided by that pass's sampled tokens and averaged over
passes and problems (nanochat's token-level normalisation). Learning rates = [train]'s × rl.init_lr_frac,
decaying linearly to 0. Every rl.eval_every steps: pass@1 … pass@k on held-out problems (the test split; the
same problems and seeds each time), from k samples per problem with the unbiased estimator.
The stream's position and its RNG are the loader state in the checkpoint, so a resume samples exactly the same
completions. Not here: value functions, KL penalties, reward shaping (a malformed answer earns 0, like a wrong one).
"""

from __future__ import annotations

import math
import random
from typing import Any

from nanochat_cli.errors import PreflightError
from nanochat_cli.train.phase_data import INIT_FROM, PhaseData, StepStats

# Arithmetic problems RL trains on: indices past every packaged mid/SFT arithmetic problem (those use train
# indices below 10,000), so RL learns from problems the model never saw; the test split stays disjoint.
ARITHMETIC_TRAIN_START = 1_000_000
ARITHMETIC_TRAIN_PROBLEMS = 10_000
ARITHMETIC_TEST_PROBLEMS = 1_000
SAMPLES_SHOWN = 3  # sampled answers per evaluation kept for the report card


def resolve_task(cfg) -> str:
    """rl.task, with auto = gsm8k when SFT trains on the hub mixture, else the packaged arithmetic."""
    if cfg.rl.task != "auto":
        return cfg.rl.task
    return "gsm8k" if cfg.sft.mixture == "hub" else "arithmetic"


def datasets_needed(cfg) -> list[tuple[str, str, str]]:
    """The (repo, config, split) datasets RL loads: GSM8K train and test, or none for the packaged arithmetic."""
    from nanochat_cli.tasks.gsm8k import REPO

    return [(REPO, "main", "train"), (REPO, "main", "test")] if resolve_task(cfg) == "gsm8k" else []


def build_tasks(cfg, init_problem: str | None = None):
    """(train task, held-out task) — or one PreflightError naming every problem, each with its fix."""
    problems: list[tuple[str, str]] = []
    if init_problem:
        problems.append((f"rl starts from an {INIT_FROM['rl']} model: {init_problem}",
                         f"train it first: `nanochat train {INIT_FROM['rl']}`"))
    which = resolve_task(cfg)
    tasks = []
    for split, fix in (("train", "nanochat data fetch sft"), ("test", "nanochat data fetch eval")):
        try:
            if which == "gsm8k":
                from nanochat_cli.tasks.gsm8k import GSM8K

                task = GSM8K.from_hub(cfg, split)
            else:
                from nanochat_cli.tasks.arithmetic import TASK_NUMBERS, Arithmetic

                numbers = TASK_NUMBERS[which]
                task = (Arithmetic(ARITHMETIC_TRAIN_START + ARITHMETIC_TRAIN_PROBLEMS, "train", numbers,
                                   start=ARITHMETIC_TRAIN_START) if split == "train"
                        else Arithmetic(ARITHMETIC_TEST_PROBLEMS, "test", numbers))
            task[0]  # builds one problem: a wrong schema fails here  # noqa: B018
            tasks.append(task)
        except (PreflightError, ValueError, KeyError, TypeError, OSError) as e:
            message = getattr(e, "message", None) or f"{e.__class__.__name__}: {e}"
            problems.append((f"{which} {split}: {' '.join(str(message).split())[:300]}",
                             getattr(e, "fix", None) or f"`{fix}`"))
    if problems:
        fixes = list(dict.fromkeys(fix for _, fix in problems))
        raise PreflightError(f"`nanochat train rl` cannot start: {'; '.join(p for p, _ in problems)}",
                             " then ".join(fixes))
    return tasks[0], tasks[1]


class ProblemStream:
    """This rank's training problems of `task` in order (rank, rank + world, …, wrapping around at the end), each
    with a sampling seed from the stream's own RNG. `state_dict()` holds the position and the RNG, so a restored
    stream hands out the same problems with the same seeds."""

    def __init__(self, task, rank: int, world_size: int, seed: int):
        self.task, self.size, self.rank, self.world = task, len(task), rank, world_size
        self.pos = 0
        self.rng = random.Random(f"nanochat-rl:{seed}:{rank}")

    def __iter__(self):
        return self

    def __next__(self) -> tuple[int, int]:
        index = (self.rank + self.pos * self.world) % self.size
        self.pos += 1
        return index, self.rng.getrandbits(31)

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"kind": "rl", "pos": self.pos, "rng": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = int(state["pos"])
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))


# ---------------------------------------------------------------------------------------------------
# The objective (pure functions: tests check them on hand-computed cases)

def advantages(rewards: list[float]) -> list[float]:
    """Each sample's reward minus the mean reward of its problem's samples (nanochat: no division by σ)."""
    mean = sum(rewards) / len(rewards)
    return [r - mean for r in rewards]


def policy_gradient_loss(logp, advantages, valid, passes: int = 1):
    """−Σ_{b,t} A_b·log p_{b,t}·valid_{b,t} / (Σ valid · passes): the loss whose gradient raises the log-probability
    of tokens in better-than-average samples. logp, valid: (B, T); advantages: (B,); `passes` = how many such
    terms are summed into one step's gradient (passes per problem × problems per rank)."""
    objective = (logp * advantages[:, None] * valid).sum()
    return -objective / (valid.sum().clamp(min=1) * passes)


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Unbiased pass@k from n samples of which `correct` are right (Chen et al. 2021): 1 − C(n−c, k)/C(n, k)."""
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)


# ---------------------------------------------------------------------------------------------------
# Sampling

def _generation(cfg, seed: int):
    from nanochat_cli.model.engine import GenerationConfig

    return GenerationConfig(max_tokens=cfg.rl.max_new_tokens, temperature=cfg.rl.temperature, top_k=cfg.rl.top_k,
                            seed=seed)


def sample_completions(engine, prompt: list[int], n: int, batch: int, cfg, seed: int):
    """(tokens, masks) of n completions of `prompt`, sampled `batch` at a time with seeds seed, seed+1, …
    (mask: 1 where the model chose the token, 0 where the calculator forced it)."""
    tokens, masks = [], []
    for j in range(0, n, batch):
        t, m = engine.generate_with_masks(prompt, min(batch, n - j), _generation(cfg, (seed + j) & 0x7FFFFFFF))
        tokens += t
        masks += m
    return tokens, masks


def _completion_text(engine, tokens: list[int]) -> str:
    if tokens and tokens[-1] in engine.stop_ids:
        tokens = tokens[:-1]
    return engine.tokenizer.decode(tokens)


def _batch(prompt: list[int], completions: list[list[int]], masks: list[list[int]], pad: int, device):
    """(inputs, targets) (B, T) for prompt + completion rows padded with `pad`; targets −1 except on sampled
    tokens (the prompt, forced calculator output and padding teach nothing)."""
    import torch

    rows = [prompt + c for c in completions]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    keep = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (c, m) in enumerate(zip(completions, masks)):
        ids[i, :len(prompt) + len(c)] = torch.tensor(prompt + c, dtype=torch.long)
        keep[i, len(prompt):len(prompt) + len(c)] = torch.tensor(m, dtype=torch.bool)
    targets = ids[:, 1:].clone()
    targets[~keep[:, 1:]] = -1
    return ids[:, :-1].to(device), targets.to(device)


# ---------------------------------------------------------------------------------------------------
# The phase's step and evaluation

def rl_step(s, step: int) -> StepStats:
    """One optimizer step of RL (see the module docstring)."""
    import torch

    from nanochat_cli import dist
    from nanochat_cli.model.engine import Engine
    from nanochat_cli.tokenizer.chat import render_for_completion
    from nanochat_cli.train.schedule import apply_schedule

    rl, world = s.cfg.rl, s.info.world_size
    task = s.data.train.task
    per_rank = rl.problems_per_step // world
    batch = min(rl.device_batch_size, rl.samples_per_problem)
    passes = per_rank * math.ceil(rl.samples_per_problem / batch)
    engine = Engine(s.raw_model, s.tokenizer)
    forward = type(s.raw_model).forward  # the plain model: completions have ragged lengths, nothing to compile
    pad = s.tokenizer.special_id("<|assistant_end|>")
    loss_sum, rewards_all, lengths, trained, learned = 0.0, [], [], 0, False
    for _ in range(per_rank):
        index, seed = next(s.data.train)
        conversation = task[index]
        prompt = render_for_completion(s.tokenizer, conversation)
        if len(prompt) >= s.gpt_config.seq_len:  # no room to answer in this context: nothing to sample or learn
            continue
        completions, masks = sample_completions(engine, prompt, rl.samples_per_problem, batch, s.cfg, seed)
        rewards = [float(task.evaluate(conversation, _completion_text(engine, c))) for c in completions]
        adv = advantages(rewards)
        rewards_all += rewards
        lengths += [len(c) for c in completions]
        for b in range(0, len(completions), batch):
            trained += sum(sum(m) for m in masks[b:b + batch])
            if not any(adv[b:b + batch]):
                # Every sample as good as the mean (all right or all wrong): its gradient is exactly zero, so
                # the forward and backward would be wasted — most of them once the model is mostly right.
                continue
            inputs, targets = _batch(prompt, completions[b:b + batch], masks[b:b + batch], pad, s.device)
            nll = forward(s.raw_model, inputs, targets, loss_reduction="none").view_as(inputs)
            valid = (targets >= 0).to(nll.dtype)
            a = torch.tensor(adv[b:b + batch], dtype=nll.dtype, device=nll.device)
            loss = policy_gradient_loss(-nll, a, valid, passes)
            loss.backward()
            loss_sum += loss.item()
            learned = True
    if not learned:  # nothing to learn on this rank: zero gradients, so every rank's optimizer takes part
        sum((p * 0).sum() for p in s.raw_model.parameters()).backward()
    lrm = apply_schedule(s.optimizers, step, s.num_iterations, s.cfg.train)
    for opt in s.optimizers:
        opt.step()
    s.raw_model.zero_grad(set_to_none=True)
    loss_all, reward_sum, n_samples, length_sum, tokens = _sum_over_ranks(
        [loss_sum, sum(rewards_all), len(rewards_all), sum(lengths), trained])
    return StepStats(loss_all / world, lrm, int(tokens),
                     {"reward": reward_sum / max(1.0, n_samples), "sample_tokens": length_sum / max(1.0, n_samples)})


def _sum_over_ranks(values: list[float]) -> list[float]:
    """Element-wise sums over ranks of a few numbers (an object all-gather: small, and the same on nccl and gloo)."""
    from nanochat_cli import dist

    return [float(sum(column)) for column in zip(*dist.gather_objects(values))]


def rl_evaluate(s, step: int, task) -> dict[str, Any]:
    """pass@1 … pass@k (k = rl.eval_samples) on the first rl.eval_problems held-out problems, strided over ranks;
    each problem's seeds are the same at every evaluation (common random numbers: the curve moves with the
    weights, not with the dice). Also a few sampled answers, with their calculator calls, for the report."""
    from nanochat_cli.model.engine import Engine
    from nanochat_cli.tokenizer.chat import render_for_completion

    rl, info = s.cfg.rl, s.info
    k = rl.eval_samples
    n = min(rl.eval_problems, len(task))
    engine = Engine(s.raw_model, s.tokenizer)
    totals = [0.0] * (k + 1)  # pass@1..k sums, then the problem count
    shown = []
    for index in range(info.rank, n, info.world_size):
        conversation = task[index]
        prompt = render_for_completion(s.tokenizer, conversation)
        totals[k] += 1
        if len(prompt) >= s.gpt_config.seq_len:  # does not fit the context: counted as wrong, as chat evals do
            continue
        completions, _ = sample_completions(engine, prompt, k, min(rl.device_batch_size, k), s.cfg,
                                            s.cfg.train.seed + index)
        texts = [_completion_text(engine, c) for c in completions]
        correct = sum(task.evaluate(conversation, t) for t in texts)
        for j in range(1, k + 1):
            totals[j - 1] += pass_at_k(k, correct, j)
        if len(shown) < SAMPLES_SHOWN and info.is_rank0:
            shown.append({"prompt": conversation["messages"][0]["content"][:300], "completion": texts[0][:400],
                          "correct": bool(task.evaluate(conversation, texts[0]))})
    totals = _sum_over_ranks(totals)
    count = max(1.0, totals[k])
    out: dict[str, Any] = {f"pass@{j}": totals[j - 1] / count for j in sorted({1, k})}
    out["eval_problems"] = int(totals[k])
    if shown:
        out["rl_samples"] = shown
    return out


def rl_data(cfg, tokenizer, rank: int = 0, world_size: int = 1, init_problem: str | None = None) -> PhaseData:
    """The RL phase for the loop: its problem stream, step, evaluation and length (preflight first)."""
    train_task, eval_task = build_tasks(cfg, init_problem)
    num_iterations = cfg.rl.num_iterations
    if num_iterations < 0:
        num_iterations = max(1, len(train_task) // cfg.rl.problems_per_step)
    data = PhaseData(train=ProblemStream(train_task, rank, world_size, cfg.train.seed), init_from="sft",
                     num_iterations=num_iterations, step=rl_step,
                     evaluate=lambda s, step: rl_evaluate(s, step, eval_task),
                     summary=f"{resolve_task(cfg)}: {len(train_task):,} training problems, "
                             f"{min(cfg.rl.eval_problems, len(eval_task)):,} held-out; {cfg.rl.problems_per_step} "
                             f"problems × {cfg.rl.samples_per_problem} samples per step")
    return data
