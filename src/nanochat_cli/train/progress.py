"""Training progress for people: a rich bar on a TTY (rank 0) with step, loss, tok/s, MFU and ETA;
plain lines otherwise (Slurm logs), at most one every `every_s` seconds plus the first and last step.

MFU = model FLOPs per token × tokens per second / (peak bf16 FLOPs of the GPU × GPUs), with the peaks of
hardware.py; on CPU there is no honest peak, so no MFU.
It only displays; metrics.jsonl (track.py) is the record.
"""

from __future__ import annotations

import sys
import time

def _fmt_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    def __init__(self, phase: str, total: int, start: int, enabled: bool, every_s: float = 10.0):
        self.phase, self.total, self.start = phase, total, start
        self.enabled = enabled
        self.every_s = every_s
        self._last_print = 0.0
        self._t0 = time.time()
        self._bar = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self._bar = RichProgress(TextColumn(f"[bold]{phase}[/]"), BarColumn(),
                                     TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[info]}"),
                                     TimeRemainingColumn(), console=Console(file=sys.stderr),
                                     transient=False, redirect_stderr=False, redirect_stdout=False)
            self._task = self._bar.add_task(phase, total=total, completed=start, info="")
            self._bar.start()

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def update(self, step: int, loss: float, tok_per_s: float, mfu: float | None) -> None:
        if not self.enabled:
            return
        info = f"loss {loss:.4f} · {tok_per_s:,.0f} tok/s" + (f" · MFU {mfu:.1f}%" if mfu is not None else "")
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=info)
            return
        now = time.time()
        if step in (self.start + 1, self.total) or now - self._last_print >= self.every_s:
            done = step - self.start
            eta = (now - self._t0) / done * (self.total - step) if done else float("nan")
            sys.stderr.write(f"{self.phase} step {step}/{self.total} ({100 * step / max(self.total, 1):.1f}%) | "
                             f"{info} | eta {_fmt_eta(eta)}\n")
            sys.stderr.flush()
            self._last_print = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
