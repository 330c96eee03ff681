"""Which run and which phase `nanochat resume` continues: a named run (`--run`/track.run) is never
confused with another run in the same home; `--phase P` continues only P (resume, start, or nothing
when P is done) — what a requeued Slurm step runs, so a signal that lands just after a phase finished,
or before the phase wrote anything, never fails the job or skips a phase."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanochat_cli.errors import UsageError
from nanochat_cli.paths import Paths
from nanochat_cli.train.resume import plan_resume
from tests.train.conftest import losses, tiny_config_file


def write_run(home: Path, run_id: str, phases: dict[str, str], updated: str) -> None:
    """A run directory as training leaves it: manifest.json with per-phase status (no checkpoints)."""
    d = home / "runs" / run_id
    d.mkdir(parents=True, exist_ok=True)
    data = {"run_id": run_id, "created": updated, "updated": updated, "profile": "cpu-tiny", "depth": 2,
            "phases": {p: {"status": s} for p, s in phases.items()}}
    (d / "manifest.json").write_text(json.dumps(data))


def plan(home: Path, **kw):
    p = plan_resume(Paths(home), **kw)
    return p.run_id, [(s.phase, s.action) for s in p.steps], p.note


def test_a_named_run_is_continued_even_when_another_run_is_newer(home):
    write_run(home, "mine", {"base": "interrupted"}, "2026-01-01T00:00:00Z")
    write_run(home, "theirs", {"base": "running"}, "2026-01-02T00:00:00Z")
    assert plan(home) == ("theirs", [("base", "start")], None)  # unnamed: the latest unfinished run
    assert plan(home, run="mine") == ("mine", [("base", "start")], None)


def test_a_named_run_with_every_phase_done_is_nothing_to_do_exit_0(home, run_cli):
    write_run(home, "finished", {"base": "done", "mid": "done"}, "2026-01-01T00:00:00Z")
    r = run_cli("resume", "--run", "finished")
    assert r.returncode == 0, r.stderr
    assert "run finished:" in r.stdout and "every phase is done; nothing to resume" in r.stdout
    r = run_cli("resume")  # no name: still an error, there is nothing unfinished anywhere
    assert r.returncode == 2 and "nothing to resume" in r.stderr


def test_an_unknown_run_name_is_a_usage_error_that_lists_the_runs(home, run_cli):
    write_run(home, "d20-v1", {"base": "running"}, "2026-01-01T00:00:00Z")
    r = run_cli("resume", "--run", "d20-v2")
    assert r.returncode == 2 and "no run named 'd20-v2'" in r.stderr and "d20-v1" in r.stderr
    assert "Traceback" not in r.stderr


def test_phase_continues_only_that_phase(home):
    write_run(home, "job", {"base": "done", "mid": "interrupted", "sft": "pending"}, "2026-01-01T00:00:00Z")
    assert plan(home, run="job", phase="mid") == ("job", [("mid", "start")], None)
    assert plan(home, run="job") == ("job", [("mid", "start"), ("sft", "start")], None)
    # signalled just after base finished: the requeued base step has nothing to do
    assert plan(home, run="job", phase="base") == ("job", [], "base is already done; nothing to resume")


def test_phase_starts_a_phase_the_run_never_reached(home):
    write_run(home, "job", {"base": "done"}, "2026-01-01T00:00:00Z")  # preempted before mid wrote anything
    assert plan(home, run="job", phase="mid") == ("job", [("mid", "start")], None)
    # preempted before the run wrote its manifest at all: the phase starts, under the job's run name
    p = plan_resume(Paths(home), run="fresh", phase="base")
    assert (p.run_id, p.run_dir, p.config_file) == ("fresh", str(home / "runs" / "fresh"), None)
    assert [(s.phase, s.action) for s in p.steps] == [("base", "start")]


def test_from_and_phase_together_or_an_unknown_phase_are_usage_errors(home, run_cli):
    with pytest.raises(UsageError, match="--from and --phase"):
        plan_resume(Paths(home), from_phase="mid", phase="mid")
    r = run_cli("resume", "--phase", "rlhf", "--run", "x")
    assert r.returncode == 2 and "--phase must be one of base, mid, sft" in r.stderr


def test_dry_run_json_carries_the_note(home, run_cli):
    write_run(home, "job", {"base": "done"}, "2026-01-01T00:00:00Z")
    r = run_cli("resume", "--phase", "base", "--run", "job", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["run_id"] == "job" and got["steps"] == [] and "already done" in got["note"]


def test_resume_phase_trains_a_run_that_never_started_and_then_is_a_no_op(data_home, tmp_path, run_cli):
    cfg_file = tiny_config_file(tmp_path, iters=4, eval_every=0, save_every=0)
    r = run_cli("resume", "--phase", "base", "--run", "requeued", "--config", str(cfg_file))
    assert r.returncode == 0, r.stderr
    assert "base: done at step 4/4" in r.stdout
    manifest = json.loads((data_home / "runs" / "requeued" / "manifest.json").read_text())
    assert manifest["phases"]["base"]["status"] == "done"
    assert sorted(losses(data_home)) == [1, 2, 3, 4]
    r = run_cli("resume", "--phase", "base", "--run", "requeued", "--config", str(cfg_file))
    assert r.returncode == 0 and "already done" in r.stdout, r.stderr


def test_from_with_a_new_run_name_starts_from_the_newest_finished_checkpoint(home):
    """`resume --from mid --run new`: the base checkpoint is the newest finished one across runs, and mid and
    sft run under the new name; without a name they join the base's run (it has no mid yet)."""
    from nanochat_cli.errors import PreflightError

    write_run(home, "base-run", {"base": "done"}, "2026-01-01T00:00:00Z")
    with pytest.raises(PreflightError, match="no base checkpoint"):  # no checkpoint on disk yet
        plan_resume(Paths(home), from_phase="mid", run="new")
    import torch

    from nanochat_cli import checkpoint as ck

    ck.save_checkpoint(Paths(home).run_checkpoints("base-run", "base"), 10, {"w": torch.zeros(2)}, {},
                       {"run_id": "base-run", "num_iterations": 10})
    later = [("mid", "start"), ("sft", "start"), ("rl", "start")]  # --from mid: mid and every phase after it
    assert plan(home, from_phase="mid", run="new") == ("new", later, None)
    assert plan(home, from_phase="mid") == ("base-run", later, None)
    # a run that has trained mid is never trained over: a named one is refused, an unnamed call gets a new run
    ck.save_checkpoint(Paths(home).run_checkpoints("base-run", "mid"), 3, {"w": torch.zeros(2)}, {},
                       {"run_id": "base-run", "num_iterations": 3})
    with pytest.raises(UsageError, match="already|unfinished"):
        plan_resume(Paths(home), from_phase="mid", run="base-run")
    run_id, steps, _ = plan(home, from_phase="mid")
    assert run_id not in ("base-run", None) and steps == later


@pytest.mark.parametrize("name", ["tmp", "no-such-run"])
def test_resume_of_a_name_that_is_not_a_run_says_so_and_never_continues_another(home, run_cli, name):
    write_run(home, "other", {"base": "interrupted"}, "2026-01-01T00:00:00Z")
    r = run_cli("resume", "--run", name, "--dry-run")
    assert r.returncode == 2 and f"no run named '{name}'" in r.stderr and "other" not in r.stdout
    assert len(r.stderr.strip().splitlines()) == 1


def test_invalid_run_names_are_one_line_exit_2(home, run_cli):
    from nanochat_cli.runs import check_run_name

    for name in ("ü名", "a" * 65, "../escape", "a b", "-x", "x.", "a..b", "a/b", ""):
        with pytest.raises(UsageError, match="not a valid run name"):
            check_run_name(name)
    for args in (("resume", "--run", "ü名"), ("report", "--run", "../../etc"), ("chat", "--run", "a" * 300, "-p", "x"),
                 ("train", "base", "--run", "a b")):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "not a valid run name" in r.stderr, r.stderr
