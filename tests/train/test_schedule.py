"""LR and momentum schedules: exact values at the corners of the trapezoid."""

from __future__ import annotations

import pytest
import torch

from nanochat_cli.train.schedule import apply_schedule, lr_multiplier


def test_constant_then_warmdown_to_final_frac():
    n = 100
    vals = [lr_multiplier(s, n, 0.0, 0.2, 0.1) for s in range(n)]
    assert vals[0] == 1.0 and vals[80] == 1.0
    assert vals[81] == pytest.approx(19 / 20 + (1 / 20) * 0.1)
    assert vals[99] == pytest.approx(1 / 20 + (19 / 20) * 0.1)
    assert all(a >= b for a, b in zip(vals, vals[1:]))  # never increases without warm-up


def test_warmup_is_linear_and_reaches_peak():
    n = 50
    assert [lr_multiplier(s, n, 0.1, 0.0, 0.0) for s in range(6)] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    assert lr_multiplier(49, n, 0.1, 0.0, 0.0) == 1.0


def test_warmdown_reaches_final_lr_frac_at_the_end():
    assert lr_multiplier(10, 10, 0.0, 0.5, 0.25) == pytest.approx(0.25)


def test_apply_schedule_scales_initial_lr_and_leaves_momentum_to_the_optimizer():
    from types import SimpleNamespace

    p = torch.nn.Parameter(torch.zeros(2))
    adam = torch.optim.AdamW([p], lr=0.5)
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.0)
    for opt in (adam, sgd):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
    cfg = SimpleNamespace(warmup_ratio=0.0, warmdown_ratio=0.5, final_lr_frac=0.0)
    lrm = apply_schedule([adam, sgd], 75, 100, cfg)
    assert lrm == pytest.approx(0.5)
    assert adam.param_groups[0]["lr"] == pytest.approx(0.25) and "momentum" not in adam.param_groups[0]
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.05) and sgd.param_groups[0]["momentum"] == 0.0
