"""`nanochat bench learn`: the wall time of one `nanochat learn step`, measured the way a learner
meets it — a fresh process (Python start, torch import, the step, exit) on a fresh skeleton — and once
more on a completed workspace (every component checked, plus the 12-step loss curve).

Measured in subprocesses rather than in-process because ~2 s of the 3 s budget is importing torch,
which an in-process timing would hide. Reports the median of `repeats` runs (first runs are slower
while the page cache warms up); it never asserts a bound, the figure is for people and CI to read.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 3.0


def _time_step(ws: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nanochat_cli", "learn", "step", str(ws)],
                          capture_output=True, text=True)
    return time.perf_counter() - t0, proc.returncode


def bench_step(repeats: int = 3) -> dict:
    from nanochat_cli.learn import skeleton, workspace
    from nanochat_cli.learn.components import COMPONENTS

    with tempfile.TemporaryDirectory(prefix="nanochat-learn-bench-") as d:
        fresh = Path(d) / "fresh"
        workspace.init(fresh)
        first = [_time_step(fresh) for _ in range(repeats)]
        done = Path(d) / "done"
        workspace.init(done)
        ref = skeleton.reference_source()
        text = (done / "gpt.py").read_text(encoding="utf-8")
        for comp in COMPONENTS:
            text = skeleton.splice_reference(text, ref, comp)
        (done / "gpt.py").write_text(text, encoding="utf-8")
        complete = [_time_step(done) for _ in range(repeats)]
    from nanochat_cli.hardware import usable_cpus

    cores = usable_cpus()
    median = statistics.median(t for t, _ in first)
    return {
        "learn_step_seconds": round(median, 3),
        "learn_step_runs": [round(t, 3) for t, _ in first],
        "learn_step_exit_code": first[0][1],
        "complete_step_seconds": round(statistics.median(t for t, _ in complete), 3),
        "complete_step_exit_code": complete[0][1],
        "target_seconds": TARGET_SECONDS,
        "within_target": median < TARGET_SECONDS,
        "cores": cores,
        "what": "wall time of `nanochat learn step` in a fresh process (Python start + torch import + step), "
                "median of runs; fresh skeleton (stops at the first TODO) and a complete workspace",
    }
