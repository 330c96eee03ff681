"""The speedrun's `eval` stage: base bpb, CORE (or the mini-suite when the bundle is absent) of the base
model, and chat evals of the mid and SFT models; every number goes to the run's metrics.jsonl and to a
top-level "evals" key of its manifest, and is returned.

Which chat suite runs follows sft.mixture (hub → ChatCORE, packaged → mini-suite), so an offline profile
never needs a download. Problems per task are capped by eval.speedrun_max_problems (cpu-tiny: 5, which
keeps the stage to a few tens of seconds on 2 cores); the standalone `eval` commands have no such cap.
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
    from nanochat_cli.eval.bpb import evaluate_bpb, token_byte_lengths, validation_batches
    from nanochat_cli.eval.chat_eval import MINI_TASKS, CHATCORE_TASKS, evaluate_chat_model, resolve_suite
    from nanochat_cli.eval.core import evaluate_core
    from nanochat_cli.eval.runner import eval_device
    from nanochat_cli.eval.record import jsonable
    from nanochat_cli.model.inference import load_for_inference
    from nanochat_cli.track import Tracker
    from nanochat_cli.runs import Manifest

    paths = Paths.of(cfg)
    run_dir = paths.run_dir(run_id)
    device_name = eval_device(cfg)
    cap = cfg.eval.speedrun_max_problems if cfg.eval.speedrun_max_problems >= 0 else cfg.eval.chat_max_problems
    evals: dict[str, Any] = {}
    tracker = Tracker(cfg, run_dir, run_id, "eval")
    t_all = time.time()
    try:
        if not _has_checkpoint(cfg, run_id, "base"):
            raise NanochatError(f"run {run_id} has no base checkpoint to evaluate",
                                "run `nanochat train base` (or let `nanochat speedrun` do it)")
        base = load_for_inference(cfg, "base", device=device_name, run=run_id)
        device = next(base.model.parameters()).device
        t0 = time.time()
        recorded = _recorded_val_bpb(run_dir, base.step)
        if recorded is not None:  # the loop's last-step eval of this very checkpoint: no need to redo it
            bpb = recorded
            evals["base_bpb"] = {"bpb": bpb, "step": base.step, "tokens": cfg.train.eval_tokens, "seconds": 0.0,
                                 "from": "base training's final validation"}
        else:
            tokens = min(cfg.eval.bpb_tokens, cfg.train.eval_tokens)
            bpb = evaluate_bpb(base.model, validation_batches(cfg, base.tokenizer, tokens=tokens),
                               token_byte_lengths(base.tokenizer), device)
            evals["base_bpb"] = {"bpb": bpb, "step": base.step, "tokens": tokens, "seconds": time.time() - t0}
        tracker.log({"step": base.step, "model": "base", "val_bpb": bpb})
        progress(f"eval: base val bpb {bpb:.4f}")
        if _bundle_present(cfg):
            res = evaluate_core(base.model, base.tokenizer, paths.eval_bundle, device, cfg.eval.core_max_per_task,
                                progress=progress)
            evals["base_core"] = {**res, "step": base.step}
            tracker.log({"step": base.step, "model": "base", "core": res["core"],
                         **{f"core/{k}": v["centered"] for k, v in res["tasks"].items()}})
            progress(f"eval: base CORE {res['core']:.4f}")
        else:
            # A base model has not learned the chat format's answer endings, so generative tasks would only
            # run to chat_max_tokens and score 0: it gets the mini-suite's multiple-choice part (scored by
            # letter logits, ~1 s), and its score is that task's centered accuracy.
            res = evaluate_chat_model(base.model, base.tokenizer, cfg, ["quiz"], "mini", device,
                                      max_problems=cfg.eval.chat_max_problems, progress=progress)
            res["score"] = res["tasks"]["quiz"]["centered"]
            res["score_name"] = "mini-suite (quiz) centered"
            evals["base_mini"] = {**res, "step": base.step,
                                  "note": "CORE eval bundle absent (`nanochat data fetch eval`): mini-suite quiz instead"}
            tracker.log({"step": base.step, "model": "base", "mini_suite": res["score"],
                         **{f"mini/{k}": v["accuracy"] for k, v in res["tasks"].items()}})
            progress(f"eval: base mini-suite quiz centered {res['score']:.4f} (no CORE bundle)")
        del base
        suite = resolve_suite(cfg)
        names = list(CHATCORE_TASKS if suite == "chatcore" else MINI_TASKS)
        for phase in ("mid", "sft"):
            if not _has_checkpoint(cfg, run_id, phase):
                evals[f"{phase}_chat"] = {"skipped": f"no {phase} checkpoint"}
                progress(f"eval: {phase} skipped (no checkpoint)")
                continue
            loaded = load_for_inference(cfg, phase, device=device_name, run=run_id)
            res = evaluate_chat_model(loaded.model, loaded.tokenizer, cfg, names, suite, device, max_problems=cap,
                                      progress=progress)
            evals[f"{phase}_chat"] = {**res, "step": loaded.step}
            tracker.log({"step": loaded.step, "model": phase, "chat_score": res["score"], "suite": suite,
                         **{f"chat/{k}": v["accuracy"] for k, v in res["tasks"].items()}})
            if res["score"] is not None:
                progress(f"eval: {phase} {res['score_name']} {res['score']:.4f}")
    finally:
        tracker.close()
    evals["seconds"] = time.time() - t_all
    manifest_path = run_dir / "manifest.json"
    manifest = Manifest.load(run_dir) if manifest_path.is_file() else Manifest.create(paths, run_id, cfg, [])
    # keep results recorded by standalone `nanochat eval`
    manifest.update(lambda data: data.setdefault("evals", {}).update(jsonable(evals)))
    return evals
