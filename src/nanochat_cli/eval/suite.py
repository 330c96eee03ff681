"""The evaluations `nanochat speedrun` runs after training, in one call: base bpb, base CORE (or the
packaged mini-suite offline) and the chat evals of the SFT model (ChatCORE or the chat mini-suite).

Each is the same function the `nanochat eval ...` command calls, so each result is also recorded in the
run (manifest `evals`, metrics.jsonl) and `nanochat report` finds it. A phase whose checkpoint is missing
is an error (the speedrun trains them first), never a silent skip. On cpu-tiny this costs ~1–3 minutes,
mostly chat-eval generation. It does not retry or sample more than once.
"""

from __future__ import annotations

from typing import Any, Callable


def run_speedrun_evals(cfg, run_id: str, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Headline numbers of every eval (JSON-serialisable); the details are in the run's manifest."""
    import os

    import torch

    from nanochat_cli.eval.bpb import run_bpb
    from nanochat_cli.eval.chat_eval import run_chat_eval
    from nanochat_cli.eval.core import run_core

    torch.set_num_threads(cfg.train.threads or max(1, len(os.sched_getaffinity(0))))
    out: dict[str, Any] = {"run_id": run_id}
    bpb = run_bpb(cfg, "base")
    out["base_bpb"] = bpb["bpb"]
    core = run_core(cfg, "base", progress=progress)
    out["base_" + ("core" if "core" in core else "mini_suite")] = core.get("core", core.get("mini_suite"))
    chat = run_chat_eval(cfg, "sft", progress=progress)
    out["sft_chat_suite"] = chat.get("suite")
    out["sft_chat_score"] = chat.get("score")
    out["sft_chat_tasks"] = {k: v["accuracy"] for k, v in chat.get("tasks", {}).items()}
    return out
