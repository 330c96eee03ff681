"""The one way a standalone `nanochat eval …` runs: load the checkpoint `-i PHASE [--run --step --depth]`
means, check its run can record the result, join the process group (torchrun: each rank evaluates its share),
run the evaluation, leave the group, and record the result in the checkpoint's run (rank 0).

Every eval command is this wrapper plus its own `work(loaded, device, info) -> result dict` and the metrics it
logs; preflight that needs no weights (the CORE bundle, the chat tasks' datasets) runs before it is called, so
a missing dataset costs milliseconds, not a model load.
"""

from __future__ import annotations

from typing import Any, Callable

from nanochat_cli import dist


def eval_device(cfg, local_rank: int = 0) -> str:
    """"cuda:<local rank>", "cpu" or "mps", as train.device resolves on this machine."""
    from nanochat_cli.model.precision import resolve_device

    dev = resolve_device(cfg)
    return f"cuda:{local_rank}" if dev.type == "cuda" else dev.type


def preflight_eval(cfg, source: str, needs: Callable[[], Any], *, run: str | None = None, step: int | None = None,
                   depth: int | None = None) -> None:
    """What `nanochat eval` checks in its own process before any worker starts (launch.py): the device needs,
    the evaluation's own data (`needs()`: the CORE bundle, the chat tasks' datasets, the validation shard) and
    that the checkpoint exists (found from meta.json files, not loaded). Each problem is one line."""
    from nanochat_cli.checkpoint_lookup import find_checkpoints
    from nanochat_cli.errors import PreflightError
    from nanochat_cli.hardware import gpu_shortfall
    from nanochat_cli.paths import Paths

    short = gpu_shortfall(cfg)
    if short is not None:
        raise PreflightError(f"gpus: {short[0]}", short[1])
    needs()
    find_checkpoints(Paths.of(cfg), source, run=run, step=step, depth=depth)


def run_on_checkpoint(cfg, source: str, kind: str, work: Callable[[Any, Any, Any], dict],
                      metrics: Callable[[dict], dict], *, step: int | None = None, run: str | None = None,
                      depth: int | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate the checkpoint of `source` with `work`; returns its result with source, step, checkpoint, run,
    rank and world size added, recorded under evals["<source>_<kind>"] of the run (kind: core, bpb, chat)."""
    from nanochat_cli.eval.record import check_recordable, record_result
    from nanochat_cli.model.inference import load_for_inference

    info = dist.dist_info()
    loaded = load_for_inference(cfg, source, step, device=eval_device(cfg, info.local_rank), run=run, depth=depth,
                                quiet=not info.is_rank0)
    if info.is_rank0:  # rank 0 records; under torchrun its exit ends the other ranks
        check_recordable(cfg, loaded.run)  # before the description: a refusal is the command's one line
        if progress is not None:
            progress(loaded.description)
    device = next(loaded.model.parameters()).device
    dist.init(cfg.dist.backend, device.type)  # no-op for a single process
    try:
        result = work(loaded, device, info)
    finally:
        dist.cleanup()
    result.update({"source": source, "step": loaded.step, "checkpoint": loaded.path, "run": loaded.run,
                   "world_size": info.world_size, "rank": info.rank})
    if info.is_rank0:
        record_result(cfg, loaded.run, kind, result, metrics(result))
    return result
