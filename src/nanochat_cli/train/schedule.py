"""Learning-rate and Muon-momentum schedules: pure functions of the step, so a resumed run gets the same
values as an uninterrupted one without saving any scheduler state.

LR: linear warm-up over `warmup_ratio` of the steps, constant, then a linear warm-down over the last
`warmdown_ratio` to `final_lr_frac` of the peak (nanochat's trapezoid; its d20 run uses 0 / 0.2 / 0.0).
Muon momentum ramps 0.85 → 0.95 over the first 300 steps (nanochat's numbers): a lower momentum early
keeps the first, large updates from overshooting. The schedule multiplies each param group's `initial_lr`.
"""

from __future__ import annotations

MUON_MOMENTUM_START = 0.85
MUON_MOMENTUM_END = 0.95
MUON_MOMENTUM_WARMUP_STEPS = 300


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


def muon_momentum(step: int) -> float:
    frac = min(step / MUON_MOMENTUM_WARMUP_STEPS, 1.0)
    return (1.0 - frac) * MUON_MOMENTUM_START + frac * MUON_MOMENTUM_END


def apply_schedule(optimizers, step: int, num_iterations: int, train_cfg) -> float:
    """Set every param group's lr (initial_lr × multiplier) and the momentum of groups that have one and
    do not schedule it themselves (AdamW groups carry `betas` instead). Returns the multiplier for logging."""
    lrm = lr_multiplier(step, num_iterations, train_cfg.warmup_ratio, train_cfg.warmdown_ratio,
                        train_cfg.final_lr_frac)
    momentum = muon_momentum(step)
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * lrm
            # An optimizer that warms its momentum up itself (ours: Muon keeps `momentum_warmup` and its step
            # in its state) is left alone; setting it here too would apply the ramp twice.
            if "momentum" in group and "momentum_warmup" not in group:
                group["momentum"] = momentum
    return lrm
