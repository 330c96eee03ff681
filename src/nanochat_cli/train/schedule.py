"""The learning-rate schedule: a pure function of the step, so a resumed run gets the same values as an
uninterrupted one without saving any scheduler state.

Linear warm-up over `warmup_ratio` of the steps, constant, then a linear warm-down over the last
`warmdown_ratio` to `final_lr_frac` of the peak (nanochat's trapezoid; its d20 run uses 0 / 0.2 / 0.0). The
multiplier scales each param group's `initial_lr`. Muon's momentum ramp (0.85 → 0.95 over 300 steps) is not
here: Muon keeps it, with its step count, in its own state (model/optim.py).
"""

from __future__ import annotations


def lr_multiplier(step: int, num_iterations: int, warmup_ratio: float, warmdown_ratio: float,
                  final_lr_frac: float) -> float:
    """Multiplier of the peak learning rate for the update made at `step` (0-based)."""
    warmup = round(warmup_ratio * num_iterations)
    warmdown = round(warmdown_ratio * num_iterations)
    if step < warmup:
        return (step + 1) / warmup
    if step <= num_iterations - warmdown:
        return 1.0
    progress = (num_iterations - step) / warmdown  # 1 → 0 over the warm-down
    return progress + (1.0 - progress) * final_lr_frac


def num_iterations(cfg, n_params: int) -> int:
    """Base training's length: cfg.train.num_iterations, or, when it is -1, target_param_data_ratio ×
    parameters (embeddings included, as nanochat counts them) / tokens per step — Chinchilla's 20 tokens per
    parameter on the GPU profiles. The loop and the speedrun's dry-run estimate both use this."""
    if cfg.train.num_iterations >= 0:
        return cfg.train.num_iterations
    tokens = cfg.train.target_param_data_ratio * n_params
    return max(1, int(tokens // cfg.train.total_batch_size))


def apply_schedule(optimizers, step: int, num_iterations: int, train_cfg) -> float:
    """Set every param group's lr to initial_lr × the multiplier for `step`; returns the multiplier."""
    lrm = lr_multiplier(step, num_iterations, train_cfg.warmup_ratio, train_cfg.warmdown_ratio,
                        train_cfg.final_lr_frac)
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * lrm
    return lrm
