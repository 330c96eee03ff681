"""What a phase plugs into the one training loop: its data (`PhaseData`; RL also its own step and evaluation)
and the phase whose checkpoint it starts from (`INIT_FROM`). Kept apart from phases.py so the mid/SFT/RL
builders and the preflight can name them without importing the table of builders that imports them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

# phase -> phase whose checkpoint initialises its weights (None = random init)
INIT_FROM = {"base": None, "mid": "base", "sft": "mid", "rl": "sft"}
INIT_NEEDED = tuple(p for p, pre in INIT_FROM.items() if pre is not None)


@dataclass
class StepStats:
    """What one optimizer step reports: the loss it minimised, the LR multiplier it used, the tokens it trained
    on (for tok/s) and phase-specific numbers logged beside them (RL: reward, sampled length)."""

    loss: float
    lrm: float
    tokens: int
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class PhaseData:
    """A phase's data. `train` yields (inputs, targets) int64 (B, T) batches forever and has
    `state_dict()`/`load_state_dict()` so a resume continues the same stream; `val` makes a fresh
    iterable of validation batches each time it is called (None = no periodic val bpb)."""

    train: Any
    val: Callable[[], Iterable] | None = None
    val_steps: int = 0
    init_from: str | None = None
    num_iterations: int | None = None  # set by phases whose length follows from their data (mid/SFT epochs)
    summary: str = ""  # one line about the data, shown when training starts
    # A phase whose optimizer step is not "next batch → cross-entropy" (RL: sample, reward, policy gradient)
    # plugs in its own: step(state, step) -> StepStats. None = loop.train_step.
    step: Callable[[Any, int], Any] | None = None
    # Its own periodic evaluation (RL: pass@k on held-out problems): evaluate(state, step) -> {metric: value};
    # None = validation bits per byte on `val`.
    evaluate: Callable[[Any, int], dict] | None = None
