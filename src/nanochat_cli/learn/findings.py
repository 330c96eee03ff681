"""What a learn-mode check reports (a Finding, or Passed), and how two outputs are compared.

`compare` is the one notion of "matches the reference": same shape, same dtype, and a max absolute
error within 1e-4 + 1e-3 × the largest reference value. fp32 reformulations (a hand-written softmax,
rsqrt instead of rms_norm) differ by ~1e-6 and pass; the known bugs differ by > 1e-2. Comparing in float64
costs nothing at the tiny size. Nothing here runs the learner's code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from nanochat_cli.learn.trace import describe

ATOL, RTOL = 1e-4, 1e-3


@dataclass
class Finding:
    """Why a step stopped: a TODO, an exception, or a component that differs from the reference."""

    kind: str  # "todo" | "error" | "mismatch"
    component: str | None
    message: str
    where: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    expected: str | None = None
    got: str | None = None
    max_error: float | None = None
    cause: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class Passed:
    """A component that matches the reference, and how that was established (the checklist's note)."""

    component: str
    note: str = "matches the reference"


@dataclass
class Report:
    workspace: str
    findings: list[Finding]
    results: dict[str, tuple[str, str]]
    curve: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.findings and all(s == "done" for s, _ in self.results.values())


class Stop(Exception):
    """Raised inside a stage when `stop_first` and a finding was made."""


def compare(got: Any, want: Any) -> tuple[bool, float, str]:
    """(ok, max abs error, what differs) for tensors or tuples of tensors."""
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return False, math.inf, f"returned {describe(got)}, expected a tensor {describe(want)}"
        if tuple(got.shape) != tuple(want.shape):
            return False, math.inf, f"shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        if got.dtype != want.dtype:
            return False, math.inf, f"dtype {got.dtype}, expected {want.dtype}"
        if want.numel() == 0:
            return True, 0.0, ""
        got, want = got.detach(), want.detach()
        diff = (got.double() - want.double()).abs()
        err = float(diff.nan_to_num(math.inf).max())
        scale = float(want.double().abs().max())
        return err <= ATOL + RTOL * scale, err, f"max abs error {err:.3g} (values up to {scale:.3g})"
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return False, math.inf, f"returned {describe(got)}, expected {describe(want)}"
        worst = (True, 0.0, "")
        for g, w in zip(got, want):
            ok, err, msg = compare(g, w)
            if not ok or err > worst[1]:
                worst = (ok and worst[0], err, msg)
            if not ok:
                return worst
        return worst
    return (got == want), 0.0 if got == want else math.inf, f"returned {got!r}, expected {want!r}"
