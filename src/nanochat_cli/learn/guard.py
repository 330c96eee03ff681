"""Keep the learner's code from hanging `learn step` or ending it: a time limit, and exits turned into errors.

The code runs in this process: a child would import torch again (~2 s of the 3 s budget) or be forked
from a process holding torch (OpenMP pools, macOS frameworks). While `guarded()` is active:
- a SIGALRM timer raises `StepTimeout` in whatever Python code runs when the limit passes, so the
  traceback ends in the loop that never finished and `check.Session` names its component and line like
  any other error. Costs one timer: `learn step` 1.98 s before, 2.03 s after (medians of 8, noise).
- `os._exit`/`os.abort` raise `ExitCalled` instead of ending the process, and `sys.exit`/`exit()` raise
  SystemExit as always; either way the step reports the call instead of vanishing (both used to end
  `learn step` silently with exit status 0).
Both are BaseExceptions, so an `except Exception:` in the learner's code (or ours) does not swallow them.
Code that swallows even those (a bare `except:` in the loop) gets one more StepTimeout a second later,
then the process ends: one line on stderr naming where, exit 1. Not covered: a C function that never
returns to Python (no timer can interrupt it: Ctrl-C does), and ending the process by other means.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Callable

DEFAULT_TIME_LIMIT = 10.0  # seconds; a step's checks take ~0.3 s after torch is imported
STRIKES = 3                # alarms, one second apart, before code that swallows StepTimeout is ended hard


class Stopped(BaseException):
    """The learner's code was stopped: it ran too long or asked the process to end."""


class StepTimeout(Stopped):
    def __init__(self, limit: float):
        super().__init__(f"still running after {limit:g} s: an endless loop? It was stopped here "
                         f"(raise the limit with --time-limit if your code is just slow)")
        self.limit = limit


class ExitCalled(Stopped):
    def __init__(self, how: str, code=None):
        shown = "" if code is None else repr(code)
        super().__init__(f"{how}({shown}) was called: it would end `nanochat learn` itself; remove it "
                         f"(raise an exception to signal an error)")
        self.how = how
        self.code = code


_REAL = {"_exit": os._exit, "abort": os.abort}
_active = 0


def _trap_exit(code=0):
    if not _active:  # a function bound while guarded (`from os import _exit`) and called later
        _REAL["_exit"](code)
    raise ExitCalled("os._exit", code)


def _trap_abort():
    if not _active:
        _REAL["abort"]()
    raise ExitCalled("os.abort")


def stopped_message(exc: BaseException) -> str:
    """What to tell the learner about SystemExit (raised by sys.exit, exit, quit) or a Stopped."""
    if isinstance(exc, SystemExit):
        return str(ExitCalled("sys.exit", exc.code))
    return str(exc)


def _user_line(frame, user_file: str) -> int | None:
    """The innermost line of `user_file` on the stack that `frame` ends, if any."""
    while frame is not None:
        if frame.f_code.co_filename == user_file:
            return frame.f_lineno
        frame = frame.f_back
    return None


@contextlib.contextmanager
def guarded(limit: float | None, user_file: str, name_line: Callable[[int], str] = lambda n: f"line {n}"):
    """Run the block with the learner's exits trapped and, when `limit` (seconds) is set and this is the
    main thread of a Unix process, a time limit on it. `user_file` is the learner's file as its code
    objects name it; `name_line(n)` says what its line n belongs to (for the hard stop's message).
    Whatever used SIGALRM before (pytest-timeout does) gets its handler and remaining time back."""
    global _active
    _active += 1
    os._exit, os.abort = _trap_exit, _trap_abort
    timer = None
    try:
        if limit and hasattr(signal, "setitimer"):
            try:
                timer = _arm(limit, user_file, name_line)
            except ValueError:  # not the main thread: no signals here, exits are still trapped
                timer = None
        yield
    finally:
        if timer is not None:
            _disarm(*timer)
        _active -= 1
        if not _active:
            os._exit, os.abort = _REAL["_exit"], _REAL["abort"]


def _arm(limit: float, user_file: str, name_line):
    strikes = [0]

    def on_alarm(signum, frame):
        line = _user_line(frame, user_file)
        if strikes[0] and line is None:
            return  # StepTimeout is unwinding through our code: the guard disarms in a moment
        strikes[0] += 1
        if strikes[0] < STRIKES:
            raise StepTimeout(limit)
        # The learner's code caught StepTimeout every time (a bare `except:` in the loop): nothing in this
        # process can stop it but ending the process.
        os.write(2, (f"Error: your code in {name_line(line)} kept running {STRIKES - 1} s after the "
                     f"{limit:g} s time limit and ignored being stopped — remove the bare `except:` around "
                     f"the endless loop\n").encode())
        _REAL["_exit"](1)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    before = signal.setitimer(signal.ITIMER_REAL, limit, 1.0)
    return previous, before, time.monotonic()


def _disarm(previous, before, started) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)
    remaining, interval = before
    if remaining > 0:  # someone else's alarm was pending: give back what is left of it
        signal.setitimer(signal.ITIMER_REAL, max(remaining - (time.monotonic() - started), 1e-3), interval)
