"""`learn watch`: re-run the step whenever the learner saves gpt.py.

Polls the file's (mtime, size) every `interval` seconds instead of using inotify/watchdog: no extra
dependency, works the same on macOS, Linux and network filesystems, and costs one stat() per 0.5 s.
Steps run in this process (torch is imported once), so a re-run takes ~0.3 s, not ~2.5 s.
Ctrl-C ends the loop normally. It does not watch anything but gpt.py.
"""

from __future__ import annotations

import time
from typing import Callable

from nanochat_cli.learn.guard import DEFAULT_TIME_LIMIT


def _signature(path):
    try:
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except FileNotFoundError:
        return None


def watch(ws, interval: float, on_message: Callable[[str], None], on_report: Callable[[str], None],
          max_runs: int | None = None, time_limit: float | None = DEFAULT_TIME_LIMIT) -> int:
    """Run a step now and after every change; returns the number of runs when interrupted."""
    from nanochat_cli.learn import check, display, progress
    from nanochat_cli.learn.components import COMPONENTS

    runs = 0
    last = None
    on_message(f"watching {ws.gpt} (Ctrl-C to stop)")
    try:
        while max_runs is None or runs < max_runs:
            sig = _signature(ws.gpt)
            if sig is not None and sig != last:
                last = sig
                runs += 1
                try:
                    report = check.run_step(ws.gpt, stop_first=True, time_limit=time_limit)
                except Exception as e:  # noqa: BLE001 - a broken save must not end the watch
                    on_report(f"[run {runs}] could not run the step: {type(e).__name__}: {e}")
                else:
                    prog = progress.Progress.load(ws.progress)
                    prog.record(report.results)
                    prog.save(ws.progress, COMPONENTS)
                    on_report(f"[run {runs} at {time.strftime('%H:%M:%S')}]\n{display.report_text(report)}")
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    return runs
