"""`nanochat chat`: missing checkpoint -> exit 2 naming the fix; -p answers from a tiny checkpoint; an
interactive session handles /clear, unknown commands and end of input."""

from __future__ import annotations

from tests.eval.ckpt_fixture import save_tiny_checkpoint, write_config


def test_chat_without_checkpoint_exits_2(run_cli):
    r = run_cli("chat", "-i", "sft", "-p", "hi")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "nanochat train sft" in r.stderr and r.stdout == ""


def test_chat_unknown_source_exits_2(run_cli):
    r = run_cli("chat", "-i", "rl", "-p", "hi")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_chat_one_shot_answers(run_cli, home, tmp_path):
    save_tiny_checkpoint(home, "sft")
    cfg = write_config(tmp_path)
    r = run_cli("chat", "-i", "sft", "-c", str(cfg), "--depth", "2", "-p", "hello", "-t", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("\n") and len(r.stdout.strip("\n")) > 0
    again = run_cli("chat", "-i", "sft", "-c", str(cfg), "--depth", "2", "-p", "hello", "-t", "0")
    assert again.stdout == r.stdout  # greedy is deterministic


def test_chat_base_completion_and_session(run_cli, home, tmp_path):
    save_tiny_checkpoint(home, "base")
    cfg = write_config(tmp_path)
    r = run_cli("chat", "-i", "base", "-c", str(cfg), "--depth", "2", input="Once upon\n/clear\n/bogus\nagain\n")
    assert r.returncode == 0, r.stderr
    assert "plain completion" in r.stderr and "conversation cleared" in r.stderr and "unknown command" in r.stderr
    assert len(r.stdout.strip().splitlines()) >= 1


def test_chat_step_missing_exits_2(run_cli, home, tmp_path):
    save_tiny_checkpoint(home, "sft", step=3)
    r = run_cli("chat", "-i", "sft", "-c", str(write_config(tmp_path)), "--depth", "2", "--step", "9", "-p", "x")
    assert r.returncode == 2 and "Traceback" not in r.stderr
