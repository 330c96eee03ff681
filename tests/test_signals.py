"""Ctrl-C, SIGTERM and SIGUSR2: training stops at a step boundary (a second Ctrl-C aborts, a duplicate delivered
within 0.5 s does not); other long work — an eval — stops with one line and the preemption exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from nanochat_cli.signals import Interrupted, StopFlag, exit_code_for, interruptible
from tests.conftest import cli_env


def test_first_ctrl_c_sets_the_flag_and_says_so():
    said = []
    with StopFlag(say=said.append) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.name == "SIGINT" and "Ctrl-C again to abort" in said[0]
        os.kill(os.getpid(), signal.SIGINT)  # the same Ctrl-C delivered twice (terminal + torchrun): ignored
        assert stop.name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_second_ctrl_c_later_aborts_at_once():
    with StopFlag() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.6)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # the handler runs at the next bytecode boundary
    assert stop.name == "SIGINT"


def test_sigterm_then_sigusr2_keeps_the_first_and_exit_codes():
    with StopFlag() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGUSR2)
    assert stop.name == "SIGTERM"
    assert (exit_code_for("SIGINT"), exit_code_for("SIGTERM"), exit_code_for("SIGUSR2")) == (130, 75, 75)


def test_interruptible_turns_sigterm_into_an_exception():
    with pytest.raises(Interrupted) as e:
        with interruptible():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert e.value.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_minutes_long_eval_stops_on_sigterm_with_one_line(home):
    from tests.eval.conftest import save_tiny_checkpoint

    save_tiny_checkpoint(home, "sft")
    p = subprocess.Popen([sys.executable, "-m", "nanochat_cli", "eval", "chat", "-i", "sft", "-a", "arithmetic",
                          "--max-problems", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=cli_env({"NANOCHAT_HOME": str(home)}))
    t0 = time.time()
    line = ""
    while "sft model: run test" not in line and time.time() - t0 < 120:
        line = p.stderr.readline()
    time.sleep(1)  # into the problems
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 75, err
    assert err.strip().splitlines()[-1] == "Error: stopped by SIGTERM; nothing half-written was kept"
    assert "Traceback" not in err
