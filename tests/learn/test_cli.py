"""`nanochat learn ...` as a user runs it (subprocess): init, step, status, hint, reset, solution, watch."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

from nanochat_cli.learn.components import COMPONENTS

FIRST, SECOND = COMPONENTS[0].name, COMPONENTS[1].name


def test_init_step_status(run_cli, tmp_path):
    r = run_cli("learn", "init", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ws = tmp_path / "nanochat-learn"
    assert (ws / "gpt.py").is_file() and (ws / "PROGRESS.md").is_file()
    r = run_cli("learn", "step", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    first_line = r.stdout.splitlines()[0]
    assert re.search(r"gpt\.py:[0-9]+", first_line) and first_line.startswith("TODO ")
    assert "received:" in r.stdout and "expected:" in r.stdout and "hint:" in r.stdout
    r = run_cli("learn", "status", cwd=tmp_path)
    assert r.returncode == 0 and "attention" in r.stdout and "0/" in r.stdout
    assert "attention" in (ws / "PROGRESS.md").read_text()


def test_init_refuses_to_overwrite_without_force(run_cli, tmp_path):
    ws = tmp_path / "mine"
    assert run_cli("learn", "init", str(ws)).returncode == 0
    (ws / "gpt.py").write_text((ws / "gpt.py").read_text() + "\n# my work\n")
    r = run_cli("learn", "init", str(ws))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--force" in r.stderr
    assert "# my work" in (ws / "gpt.py").read_text()
    r = run_cli("learn", "init", str(ws), "--force")
    assert r.returncode == 0, r.stderr
    assert "# my work" not in (ws / "gpt.py").read_text()
    backups = list((ws / "backups").glob("*/gpt.py"))
    assert len(backups) == 1 and "# my work" in backups[0].read_text()


def test_bad_workspace_is_one_line_exit_2(run_cli, tmp_path):
    for args in (["learn", "step", str(tmp_path / "nope")], ["learn", "status", str(tmp_path)],
                 ["learn", "hint", "-w", str(tmp_path / "nope")], ["learn", "reset", "norm", "-w", str(tmp_path)]):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("Error:") and "learn init" in r.stderr
        assert "Traceback" not in r.stderr


def test_empty_or_unwritable_workspace_and_nan_interval_are_one_line_exit_2(run_cli, tmp_path):
    (tmp_path / "file").write_text("")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for args, needle in ((["learn", "init", ""], "workspace path is empty"),
                         (["learn", "step", ""], "workspace path is empty"),
                         (["learn", "init", str(tmp_path / "file" / "ws")], "cannot be created"),
                         (["learn", "watch", str(tmp_path), "--interval", "nan"], "--interval")):
        r = run_cli(*args, cwd=cwd)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("Error:") and needle in r.stderr, r.stderr
    assert list(cwd.iterdir()) == []  # `learn init ''` used to write gpt.py and PROGRESS.md here


def test_unknown_component_suggests(run_cli, tmp_path):
    run_cli("learn", "init", str(tmp_path / "w"))
    r = run_cli("learn", "hint", "atention", "-w", str(tmp_path / "w"))
    assert r.returncode == 2 and "attention" in r.stderr


def test_hint_levels_are_remembered(run_cli, tmp_path):
    ws = tmp_path / "w"
    run_cli("learn", "init", str(ws))
    levels = [re.search(r"hint (\d)/", run_cli("learn", "hint", "mlp", "-w", str(ws)).stdout).group(1)
              for _ in range(4)]
    assert levels == ["1", "2", "3", "3"]
    assert '"mlp": 3' in (ws / "PROGRESS.md").read_text()


def test_solution_reset_and_status_progress(run_cli, tmp_path):
    ws = tmp_path / "w"
    run_cli("learn", "init", str(ws))
    r = run_cli("learn", "solution", FIRST, "-w", str(ws))
    assert r.returncode == 2 and "--yes" in r.stderr  # no terminal to ask: refuses rather than spoil
    r = run_cli("learn", "solution", FIRST, "--yes", "--apply", "-w", str(ws))
    assert r.returncode == 0 and "reference" in r.stdout
    r = run_cli("learn", "step", str(ws))
    assert r.stdout.startswith(f"TODO {SECOND}"), r.stdout
    r = run_cli("learn", "status", str(ws), "--json")
    import json

    status = {c["name"]: c["status"] for c in json.loads(r.stdout)["components"]}
    assert status[FIRST] == "done" and status["attention"] == "todo"
    assert f"[x]  1. **{FIRST}**" in (ws / "PROGRESS.md").read_text()
    r = run_cli("learn", "reset", FIRST, "-w", str(ws))
    assert r.returncode == 0
    assert run_cli("learn", "step", str(ws)).stdout.startswith(f"TODO {FIRST}")
    assert list((ws / "backups").glob("*/gpt.py"))


def test_learner_notes_in_progress_survive(run_cli, tmp_path):
    ws = tmp_path / "w"
    run_cli("learn", "init", str(ws))
    p = ws / "PROGRESS.md"
    p.write_text(p.read_text() + "\nMy own note about attention.\n")
    run_cli("learn", "status", str(ws))
    run_cli("learn", "hint", "-w", str(ws))
    assert "My own note about attention." in p.read_text()


def cli_env():
    """The environment run_cli uses: the `home` fixture's (no network) plus the checkout's src on the path."""
    import os
    from pathlib import Path

    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def test_watch_reruns_on_change_and_stops_on_ctrl_c(home, tmp_path):
    ws = tmp_path / "w"
    subprocess.run([sys.executable, "-m", "nanochat_cli", "learn", "init", str(ws)], env=cli_env(), check=True,
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "nanochat_cli", "learn", "watch", str(ws), "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    import threading

    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()

    def wait_for(text):
        deadline = time.time() + 60
        while text not in "".join(lines) and time.time() < deadline:
            time.sleep(0.1)
        return "".join(lines)

    try:
        out = wait_for("Progress:")
        assert f"TODO {FIRST}" in out
        from nanochat_cli.learn import workspace

        workspace.apply_solution(ws, FIRST)
        out = wait_for(f"TODO {SECOND}")
        assert "[run 2" in out and f"TODO {SECOND}" in out.split("[run 2")[1]
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        assert rc == 0
        assert "stopped watching after 2 run(s)" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bench_learn_reports_the_step_time(run_cli):
    import json

    r = run_cli("bench", "learn", "--json", "--repeats", "1")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["learn_step_seconds"] > 0 and data["learn_step_exit_code"] == 1
    assert data["complete_step_exit_code"] == 0 and data["target_seconds"] == 3.0
