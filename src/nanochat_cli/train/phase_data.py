"""What a phase plugs into the one training loop: its data (`PhaseData`) and the phase whose checkpoint it
starts from (`INIT_FROM`). Kept apart from phases.py so the mid/SFT builders (chat_phases.py) and the
preflight can name them without importing the table of builders that imports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

# phase -> phase whose checkpoint initialises its weights (None = random init)
INIT_FROM = {"base": None, "mid": "base", "sft": "mid"}
INIT_NEEDED = tuple(p for p, pre in INIT_FROM.items() if pre is not None)


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
