"""What Ctrl-C, SIGTERM and SIGUSR2 do: long work stops at a safe point and says where it stopped.

- Training (`StopFlag`): the handler only sets a flag; the loop saves a checkpoint at the next step boundary
  and returns "interrupted" (saving inside a handler could interleave with a half-done optimizer step).
  A second Ctrl-C raises KeyboardInterrupt at once; checkpoints are written to a temp dir and renamed, so
  even that never leaves a torn one. A SIGINT arriving within 0.5 s of the first is the same Ctrl-C: under
  torchrun the terminal signals the workers and torchrun forwards the signal to them again.
- Other long work (`interruptible`: evals, data stages): SIGTERM/SIGUSR2 raise `Interrupted` like Ctrl-C
  raises KeyboardInterrupt, so a Slurm time limit ends an eval with one line and the preemption exit code
  instead of a silent kill.
Exit codes: 130 after Ctrl-C (the shell's convention), 75 (EXIT_PREEMPTED) after SIGTERM/SIGUSR2.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from nanochat_cli.errors import EXIT_PREEMPTED

SAME_CTRL_C_SECONDS = 0.5


def exit_code_for(signal_name: str | None) -> int:
    return 130 if signal_name in (None, "SIGINT") else EXIT_PREEMPTED


def _stop_signals() -> tuple[int, ...]:
    return tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR2", None), signal.SIGINT) if s)


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class StopFlag:
    """Context manager: while inside, SIGTERM/SIGUSR2/SIGINT set `signum` (see the module docstring)."""

    def __init__(self, say: Callable[[str], None] = lambda text: None):
        self.signum: int | None = None
        self._first_at = 0.0
        self._old: dict[int, object] = {}
        self._say = say

    def __enter__(self) -> "StopFlag":
        if _is_main_thread():
            for s in _stop_signals():
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum, self._first_at = signum, time.monotonic()
            if signum == signal.SIGINT:
                self._say("Ctrl-C: stopping after this step and saving a checkpoint (Ctrl-C again to abort now)")
        elif signum == signal.SIGINT and time.monotonic() - self._first_at > SAME_CTRL_C_SECONDS:
            raise KeyboardInterrupt

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum else None

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class Interrupted(Exception):
    """SIGTERM or SIGUSR2 arrived during work that has no step boundary to stop at."""

    def __init__(self, signum: int):
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)


@contextmanager
def interruptible() -> Iterator[None]:
    """Within the block SIGTERM/SIGUSR2 raise `Interrupted` (Ctrl-C keeps raising KeyboardInterrupt)."""
    if not _is_main_thread():
        yield
        return

    def handle(signum, frame):
        raise Interrupted(signum)

    old = {s: signal.signal(s, handle) for s in _stop_signals() if s != signal.SIGINT}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
