"""The speedrun's `eval` stage: base bpb, CORE (or the mini-suite when the bundle is absent) of the base
model, and chat evals of the mid, SFT and RL models; every number goes to the run's metrics.jsonl and to a
top-level "evals" key of its manifest, and is returned.

Which chat suite runs follows sft.mixture (hub → ChatCORE, packaged → mini-suite), so an offline profile
never needs a download; when RL trains on `arithmetic-big`, that task is scored for every model too.
Problems per task are capped by eval.speedrun_max_problems (cpu-tiny: 5, which keeps the stage to a few tens
of seconds on 2 cores); the standalone `eval` commands have no such cap.
Base bpb is the training loop's final validation of the same checkpoint when the manifest has it (else
min(eval.bpb_tokens, train.eval_tokens) tokens: 131K tokens cost ~3 min on a busy 2-core machine).
A phase without a checkpoint is recorded as skipped with the reason, never silently left out.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from nanochat_cli.errors import NanochatError
from nanochat_cli.paths import Paths


def base_eval_kind(cfg) -> str:
    """How the pipeline evaluates the base model: "core" (the CORE bundle, nanochat's base_eval) on the fineweb
    profiles, "bpb" (bits per byte on the validation shard, no download) on the embedded-corpus ones."""
    return "core" if cfg.data.source == "fineweb" else "bpb"


def _say(msg: str) -> None:
    import sys

    sys.stderr.write(msg + "\n")


def _has_checkpoint(cfg, run_id: str, phase: str) -> bool:
    from nanochat_cli import checkpoint as ck

    return bool(ck.list_steps(Paths.of(cfg).run_checkpoints(run_id, phase)))


def _bundle_present(cfg) -> bool:
    from nanochat_cli.data.assets import check_eval_bundle

    try:
        check_eval_bundle(Paths.of(cfg).eval_bundle)
        return True
    except ValueError:
        return False


def _recorded_val_bpb(run_dir, step: int) -> float | None:
    """The base phase's val_bpb at `step` as the training loop recorded it in the manifest, if any."""
    import json

    try:
        base = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["phases"]["base"]
    except (OSError, ValueError, KeyError):
        return None
    v = (base.get("metrics") or {}).get("val_bpb")
    return float(v) if base.get("step") == step and isinstance(v, (int, float)) else None


def run_speedrun_evals(cfg, run_id: str, progress: Callable[[str], None] = _say) -> dict[str, Any]:
    """The eval stage on this process, or on every rank of a torchrun world (`speedrun --nproc N`): examples are
    strided over the ranks and their counts all-reduced; rank 0 logs and records. Every rank returns the
    same numbers."""
    from nanochat_cli import dist
    from nanochat_cli.eval.runner import eval_device
    from nanochat_cli.eval.record import jsonable
    from nanochat_cli.model.inference import load_for_inference
    from nanochat_cli.track import Tracker
    from nanochat_cli.runs import Manifest

    paths = Paths.of(cfg)
    run_dir = paths.run_dir(run_id)
    info = dist.dist_info()
    rank0 = info.is_rank0
    say = progress if rank0 else (lambda msg: None)
    device_name = eval_device(cfg, info.local_rank)
    evals: dict[str, Any] = {}
    tracker = Tracker(cfg, run_dir, run_id, "eval", enabled=rank0)
    t_all = time.time()
    try:
        if not _has_checkpoint(cfg, run_id, "base"):
            raise NanochatError(f"run {run_id} has no base checkpoint to evaluate",
                                "run `nanochat train base` (or let `nanochat speedrun` do it)")
        base = load_for_inference(cfg, "base", device=device_name, run=run_id, quiet=not rank0)
        device = next(base.model.parameters()).device
        dist.init(cfg.dist.backend, device.type)  # a no-op for one process
        _eval_base(cfg, base, device, info, run_dir, evals, tracker, say)
        del base
        _eval_chat(cfg, run_id, device_name, device, info, evals, tracker, say)
    finally:
        tracker.close()
    evals["seconds"] = time.time() - t_all
    if rank0:
        manifest_path = run_dir / "manifest.json"
        manifest = Manifest.load(run_dir) if manifest_path.is_file() else Manifest.create(paths, run_id, cfg, [])
        # keep results recorded by standalone `nanochat eval`
        manifest.update(lambda data: data.setdefault("evals", {}).update(jsonable(evals)))
    return evals


def _eval_base(cfg, base, device, info, run_dir, evals: dict, tracker, say) -> None:
    """Base bpb (the loop's final validation when it has it), then CORE or the mini-suite's quiz."""
    from nanochat_cli.eval.bpb import evaluate_bpb, token_byte_lengths, validation_batches
    from nanochat_cli.eval.chat_eval import evaluate_chat_model
    from nanochat_cli.eval.core import evaluate_core

    t0 = time.time()
    recorded = _recorded_val_bpb(run_dir, base.step)
    if recorded is not None:  # the loop's last-step eval of this very checkpoint: no need to redo it
        bpb = recorded
        evals["base_bpb"] = {"bpb": bpb, "step": base.step, "tokens": cfg.train.eval_tokens, "seconds": 0.0,
                             "from": "base training's final validation"}
    else:
        tokens = min(cfg.eval.bpb_tokens, cfg.train.eval_tokens)
        bpb = evaluate_bpb(base.model, validation_batches(cfg, base.tokenizer, info.rank, info.world_size,
                                                          tokens=tokens),
                           token_byte_lengths(base.tokenizer), device)
        evals["base_bpb"] = {"bpb": bpb, "step": base.step, "tokens": tokens, "seconds": time.time() - t0}
    tracker.log({"step": base.step, "model": "base", "val_bpb": bpb})
    say(f"eval: base val bpb {bpb:.4f}")
    if _bundle_present(cfg):
        res = evaluate_core(base.model, base.tokenizer, Paths.of(cfg).eval_bundle, device,
                            cfg.eval.core_max_per_task, info.rank, info.world_size, progress=say)
        evals["base_core"] = {**res, "step": base.step}
        tracker.log({"step": base.step, "model": "base", "core": res["core"],
                     **{f"core/{k}": v["centered"] for k, v in res["tasks"].items()}})
        say(f"eval: base CORE {res['core']:.4f}")
        return
    # A base model has not learned the chat format's answer endings, so generative tasks would only run to
    # chat_max_tokens and score 0: it gets the mini-suite's multiple-choice part (scored by letter logits,
    # ~1 s), and its score is that task's centered accuracy.
    res = evaluate_chat_model(base.model, base.tokenizer, cfg, ["quiz"], "mini", device, info.rank,
                              info.world_size, max_problems=cfg.eval.chat_max_problems, progress=say)
    res["score"] = res["tasks"]["quiz"]["centered"]
    res["score_name"] = "mini-suite (quiz) centered"
    evals["base_mini"] = {**res, "step": base.step,
                          "note": "CORE eval bundle absent (`nanochat data fetch eval`): mini-suite quiz instead"}
    tracker.log({"step": base.step, "model": "base", "mini_suite": res["score"],
                 **{f"mini/{k}": v["accuracy"] for k, v in res["tasks"].items()}})
    say(f"eval: base mini-suite quiz centered {res['score']:.4f} (no CORE bundle)")


def _eval_chat(cfg, run_id: str, device_name: str, device, info, evals: dict, tracker, say) -> None:
    """The chat suite (ChatCORE or the mini-suite) of the mid, SFT and RL models, capped per task."""
    from nanochat_cli.eval.chat_eval import MINI_TASKS, CHATCORE_TASKS, evaluate_chat_model, resolve_suite
    from nanochat_cli.model.inference import load_for_inference

    cap = cfg.eval.speedrun_max_problems if cfg.eval.speedrun_max_problems >= 0 else cfg.eval.chat_max_problems
    suite = resolve_suite(cfg)
    names = list(CHATCORE_TASKS if suite == "chatcore" else MINI_TASKS)
    if cfg.rl.task == "arithmetic-big":  # RL's own task (never what `auto` picks), greedy, for every model
        names.append("arithmetic-big")
    for phase in ("mid", "sft", "rl"):
        if not _has_checkpoint(cfg, run_id, phase):
            evals[f"{phase}_chat"] = {"skipped": f"no {phase} checkpoint"}
            say(f"eval: {phase} skipped (no checkpoint)")
            continue
        loaded = load_for_inference(cfg, phase, device=device_name, run=run_id, quiet=not info.is_rank0)
        res = evaluate_chat_model(loaded.model, loaded.tokenizer, cfg, names, suite, device, info.rank,
                                  info.world_size, max_problems=cap, progress=say)
        evals[f"{phase}_chat"] = {**res, "step": loaded.step}
        tracker.log({"step": loaded.step, "model": phase, "chat_score": res["score"], "suite": suite,
                     **{f"chat/{k}": v["accuracy"] for k, v in res["tasks"].items()}})
        if res["score"] is not None:
            say(f"eval: {phase} {res['score_name']} {res['score']:.4f}")
