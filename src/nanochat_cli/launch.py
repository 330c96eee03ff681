"""One command on N local processes, seen by the user as one command: checked once, one error line, the
workers' own exit code.

`run_here_or_launch` is what `--nproc N` means for train, resume, eval and the speedrun's stages. This process
runs the command's preflight first (no GPU, tokenizer, data or starting checkpoint is one line and exit 3 in
about a second, before any worker exists), then runs torchrun's agent *in this process*
(`torch.distributed.run.run`, the code behind the `torchrun` command), which starts the workers; they see
WORLD_SIZE and do not launch again. A worker does not print its fatal `Error:` line: it writes
`rank-<R>.json` ({code, line, time}) into a directory this process made (NANOCHAT_LAUNCH_DIR, see
`write_exit_record`), and when the agent returns this process prints the first failing rank's line once and
exits with that rank's own code (2, 3, 75, 130). torchrun alone prints every rank's copy, its own traceback,
and exits 1 for any failure. Costs: torch is imported here too (~2 s on an idle machine), and the agent's log
lines are hidden unless NANOCHAT_DEBUG is set. Ctrl-C reaches every process of the terminal's group; SIGTERM
and SIGUSR2 sent to this process are forwarded by the agent, and the workers checkpoint and exit 75.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

from nanochat_cli import dist
from nanochat_cli.errors import EXIT_FAILURE, NanochatError

# Forwarded to the workers by the agent (its default list lacks SIGUSR2, Slurm's "checkpoint now").
FORWARDED_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR2"
# Seconds the agent waits for workers to checkpoint and exit after a signal before SIGKILL (its default, 30 s,
# is short for a d20 save of ~7 GB of weights and optimizer state on a network filesystem).
SHUTDOWN_SECONDS = 120


class WorkerFailed(NanochatError):
    """A worker's own error line, printed once by the launching process (exit code: the worker's)."""


def run_here_or_launch(cfg, argv: list[str], preflight: Callable[[], None] | None = None) -> None:
    """Return when this process should do the work itself: it is a torchrun worker already, or one process is
    asked for (after `preflight()`). Else run `preflight()`, start `dist.nproc` workers running `nanochat argv`
    (without --nproc) and leave with their exit code: SystemExit, or WorkerFailed carrying their error line."""
    if dist.under_torchrun():
        return
    if preflight is not None:
        preflight()
    if cfg.dist.nproc <= 1:
        return
    if cfg.dist.nnodes > 1:
        from nanochat_cli.errors import UsageError

        raise UsageError("--nproc starts processes on this node only; dist.nnodes > 1 needs a launcher per node",
                         "use `nanochat slurm render` (srun torchrun) for multi-node runs")
    raise SystemExit(launch(argv, cfg.dist.nproc))


def launch(argv: list[str], nproc: int, verbose: bool | None = None) -> int:
    """Run `nanochat argv` on `nproc` local processes; returns the exit code to leave with (0, 75, 130, ...)
    or raises WorkerFailed with the first failing rank's line and code."""
    verbose = dist.debug_enabled() if verbose is None else verbose
    if not verbose:  # c10d's C++ warnings (a loopback-only host "cannot retrieve the hostname"), read at import
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    launch_dir = Path(tempfile.mkdtemp(prefix="nanochat-launch-"))
    # The agent hands its own environment to the workers: these tell them where to leave their exit records
    # and which process holds the run locks they may use (runs.writing_run).
    env = {dist.LAUNCH_DIR_ENV: str(launch_dir), dist.LAUNCHER_PID_ENV: str(os.getpid()),
           "PET_SIGNALS_TO_HANDLE": os.environ.get("PET_SIGNALS_TO_HANDLE", FORWARDED_SIGNALS),
           "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": os.environ.get("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(SHUTDOWN_SECONDS))}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # The agent installs handlers that raise its SignalException and leaves them: put ours back afterwards, so a
    # Ctrl-C between two launches (the speedrun's stages) is still a KeyboardInterrupt.
    handlers = {s: signal.getsignal(s) for s in _signals(FORWARDED_SIGNALS)}
    quieted = [] if verbose else _quiet_agent_loggers()
    failures: dict[int, object] = {}
    signal_name = None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        run(get_args_parser().parse_args(dist.torchrun_args(argv, nproc)))
    except ChildFailedError as e:
        failures = dict(e.failures)
    except SignalException as e:
        signal_name = signal.Signals(e.sigval).name
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for logger, level in quieted:
            logger.setLevel(level)
        for s, handler in handlers.items():
            if handler is not None:
                signal.signal(s, handler)
        records = read_exit_records(launch_dir)
        shutil.rmtree(launch_dir, ignore_errors=True)
    return outcome(records, failures, signal_name)


def _signals(names: str) -> list[signal.Signals]:
    return [getattr(signal, n) for n in names.split(",") if hasattr(signal, n)]


def _quiet_agent_loggers() -> list[tuple[logging.Logger, int]]:
    """Hide the agent's warnings ("Sending process N closing signal", "failed (exitcode: 2)"): this process
    reports the outcome itself. Returns (logger, old level) pairs to restore."""
    out = []
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logger = logging.getLogger(name)
            out.append((logger, logger.level))
            logger.setLevel(logging.CRITICAL)
    return out


def outcome(records: dict[int, dict], failures: dict[int, object], signal_name: str | None) -> int:
    """The exit code (or WorkerFailed) from the workers' records and what the agent saw. The first error line
    by time wins (later ones are usually its consequences: the other ranks lose their peer)."""
    errors = sorted((r for r in records.values() if r.get("code") and r.get("line")),
                    key=lambda r: (r.get("first_failure", True) is False, r.get("time", 0.0), r.get("rank", 0)))
    if errors:
        first = errors[0]
        raise WorkerFailed(first["line"], exit_code=int(first["code"]))
    codes = {rank: int(r.get("code", 0)) for rank, r in records.items()}
    if any(codes.values()):  # stopped without an error line: 130 after Ctrl-C, 75 after SIGTERM/SIGUSR2
        return codes.get(0) or next(c for c in codes.values() if c)
    if failures:  # a worker that left no record: a crash (its traceback is above) or a kill
        rank, failure = min(failures.items(), key=lambda kv: getattr(kv[1], "timestamp", 0))
        code = getattr(failure, "exitcode", EXIT_FAILURE)
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
            hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
            raise WorkerFailed(f"rank {rank} was killed by {name}{hint}", exit_code=EXIT_FAILURE)
        raise WorkerFailed(f"rank {rank} failed with exit code {code} (its output is above)", exit_code=EXIT_FAILURE)
    if signal_name is not None:
        from nanochat_cli.signals import exit_code_for

        return exit_code_for(signal_name)
    return 0


# ---------------------------------------------------------------------------------------------------
# The workers' side

def write_exit_record(code: int, line: str | None, detail: str | None = None) -> bool:
    """Under a launching nanochat process: record this rank's exit code and error line for it (the caller then
    prints nothing) and return True; else return False. `detail` is a traceback, kept in the record."""
    launch_dir = dist.launch_dir()
    if launch_dir is None or not dist.under_torchrun():
        return False
    from nanochat_cli.paths import atomic_write_json

    rank = dist.dist_info().rank
    record = {"rank": rank, "code": code, "line": line, "time": time.time(), "pid": os.getpid(),
              "first_failure": code == 0 or not others_failed(launch_dir, rank)}
    if detail:
        record["detail"] = detail
    try:
        atomic_write_json(Path(launch_dir) / f"rank-{rank}.json", record)
    except OSError:
        return False  # the launcher's directory is gone: say it ourselves
    return True


def others_failed(launch_dir: str | Path, rank: int) -> bool:
    """Whether another rank has already recorded a failure (this rank's error is then likely its consequence)."""
    return any(r.get("code") and r.get("rank") != rank for r in read_exit_records(Path(launch_dir)).values())


def record_crash(exc: BaseException) -> bool:
    """An unexpected exception in a worker under a launcher: record it (code 1, its one-line summary). Returns
    True when its traceback should stay quiet: another rank failed first and this one only lost its peer."""
    launch_dir = dist.launch_dir()
    if launch_dir is None or not dist.under_torchrun():
        return False
    rank = dist.dist_info().rank
    consequence = others_failed(launch_dir, rank)
    summary = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    line = f"rank {rank} crashed: {summary}" + ("" if consequence else " (traceback above)")
    write_exit_record(EXIT_FAILURE, line, "".join(traceback.format_exception(exc)))
    return consequence


def read_exit_records(launch_dir: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for p in Path(launch_dir).glob("rank-*.json"):
        try:
            record = json.loads(p.read_text(encoding="utf-8"))
            out[int(record["rank"])] = record
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out
