"""Chat evals of a mid/SFT model, and the ChatCORE average.

Categorical tasks (ARC, MMLU, packaged quiz) are scored from one forward pass: the logits at the
position after `<|assistant_start|>` restricted to the conversation's answer letters, argmax. Generative
tasks (GSM8K, HumanEval, SpellingBee, packaged arithmetic) sample a reply with the engine (greedy by
default, the calculator tool live) and grade it with the task's own `evaluate`. ChatCORE = mean over the
tasks of (acc − baseline)/(1 − baseline), baselines 0.25 for ARC×2/MMLU and 0 for the generative ones,
as nanochat. Offline profiles (mixture = packaged) use the packaged tasks instead; their average is
called `chat_mini_suite`, never ChatCORE. Problems are split over ranks and summed with all_reduce.
It does not batch generation across problems (one prompt at a time, ~50 ms/token on cpu-tiny).
"""

from __future__ import annotations

import time
from typing import Callable

# name -> (baseline, builder(cfg)); the hub tasks as nanochat evaluates them.
HUB_TASKS = ("ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K", "HumanEval", "SpellingBee")
PACKAGED_TASKS = ("Quiz", "Arithmetic", "SpellingBee-web2", "HumanEval")
BASELINES = {"ARC-Easy": 0.25, "ARC-Challenge": 0.25, "MMLU": 0.25, "GSM8K": 0.0, "HumanEval": 0.0,
             "SpellingBee": 0.0, "Quiz": 0.25, "Arithmetic": 0.0, "SpellingBee-web2": 0.0}


def build_task(cfg, name: str):
    from nanochat_cli.eval.humaneval import HumanEval

    if name == "ARC-Easy" or name == "ARC-Challenge":
        from nanochat_cli.tasks.arc import ARC

        return ARC.from_hub(cfg, name, "test")
    if name == "MMLU":
        from nanochat_cli.tasks.mmlu import MMLU

        return MMLU.from_hub(cfg, "all", "test")
    if name == "GSM8K":
        from nanochat_cli.tasks.gsm8k import GSM8K

        return GSM8K.from_hub(cfg, "test")
    if name == "HumanEval":
        return HumanEval()
    if name == "SpellingBee":
        from nanochat_cli.paths import Paths
        from nanochat_cli.tasks.sources import words_alpha
        from nanochat_cli.tasks.spelling import SpellingBee

        return SpellingBee(words_alpha(Paths.of(cfg).word_list), 256, split="test")
    if name == "Quiz":
        from nanochat_cli.tasks.quiz import Quiz

        return Quiz(400, "test")
    if name == "Arithmetic":
        from nanochat_cli.tasks.arithmetic import Arithmetic

        return Arithmetic(400, "test")
    if name == "SpellingBee-web2":
        from nanochat_cli.tasks.sources import web2_words
        from nanochat_cli.tasks.spelling import SpellingBee

        return SpellingBee(web2_words(), 256, split="test")
    from nanochat_cli.errors import UsageError

    raise UsageError(f"unknown chat eval task {name!r}", f"use one of: {', '.join(HUB_TASKS + PACKAGED_TASKS)}")


def score_categorical(model, tokenizer, task, conv, device) -> int:
    import torch

    from nanochat_cli.tokenizer.chat import render_for_completion

    ids = render_for_completion(tokenizer, conv)[-model.config.seq_len:]
    letters = list(conv.get("letters") or "ABCD")
    letter_ids = []
    for letter in letters:
        t = tokenizer.encode(letter)
        letter_ids.append(t[0])  # single-token letters in every nanochat vocab; the first token otherwise
    logits = model(torch.tensor([ids], dtype=torch.long, device=device))[0, -1]
    pick = letters[int(torch.argmax(logits[letter_ids]))]
    return int(task.evaluate(conv, pick))


def score_generative(engine, tokenizer, task, conv, max_tokens, temperature, top_k, seed) -> int:
    from nanochat_cli.tokenizer.chat import render_for_completion

    ids = render_for_completion(tokenizer, conv)
    ids = ids[-max(1, engine.model.config.seq_len - max_tokens):]
    out, _ = engine.generate_batch(ids, 1, max_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed)
    return int(task.evaluate(conv, tokenizer.decode(out[0][len(ids):])))


def evaluate_task(model, tokenizer, task, max_problems=-1, device="cpu", rank=0, world_size=1, max_tokens=256,
                  temperature=0.0, top_k=50):
    import torch
    import torch.distributed as tdist

    from nanochat_cli.model.engine import Engine

    engine = Engine(model, tokenizer)
    n = len(task) if max_problems is None or max_problems < 0 else min(len(task), max_problems)
    stats = torch.zeros(2, dtype=torch.float64, device=device)  # correct, total
    with torch.no_grad():
        for i in range(rank, n, world_size):
            conv = task[i]
            if task.eval_type == "categorical":
                ok = score_categorical(model, tokenizer, task, conv, device)
            else:
                ok = score_generative(engine, tokenizer, task, conv, max_tokens, temperature, top_k, seed=i)
            stats[0] += ok
            stats[1] += 1
    if world_size > 1 and tdist.is_available() and tdist.is_initialized():
        tdist.all_reduce(stats)
    return stats[0].item() / max(1.0, stats[1].item()), int(stats[1].item())


def evaluate_chat(cfg, model, tokenizer, tasks: list[str], packaged: bool, device="cpu", rank=0, world_size=1,
                  progress: Callable[[str], None] = lambda m: None) -> dict:
    out, t0 = {}, time.perf_counter()
    for name in tasks:
        task = build_task(cfg, name)
        ts = time.perf_counter()
        acc, n = evaluate_task(model, tokenizer, task, cfg.eval.chat_max_problems, device, rank, world_size,
                               max_tokens=min(cfg.chat.max_tokens, 256))
        b = BASELINES[name]
        out[name] = {"accuracy": acc, "problems": n, "baseline": b, "centered": (acc - b) / (1 - b),
                     "type": task.eval_type, "seconds": round(time.perf_counter() - ts, 3)}
        progress(f"{name}: accuracy {acc:.4f} over {n} problems")
    avg = sum(t["centered"] for t in out.values()) / max(1, len(out))
    key = "chat_mini_suite" if packaged else "chatcore"
    full = set(tasks) == set(PACKAGED_TASKS if packaged else HUB_TASKS)
    return {"suite": "chat-mini-suite" if packaged else "chat", "tasks": out, key: avg if full else None,
            "partial_average": None if full else avg, "seconds": round(time.perf_counter() - t0, 3)}
