"""Runs own their files: names, the manifest under concurrent writers, which checkpoint `-i PHASE` means,
`nanochat runs` / `runs rm`, and the migration of a home of the first layout."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest
import torch

from nanochat_cli import checkpoint as ck
from nanochat_cli.checkpoint_lookup import find_checkpoints, load_phase_checkpoint
from nanochat_cli.config_sources import load_config
from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.paths import Paths
from nanochat_cli.runs import Manifest, list_runs, load_named_run, remove_run, writing_run
from tests.legacy_home import LEGACY_STEPS, make_legacy_home


def save(home: Path, run: str, phase: str, step: int, total: int, **meta) -> Path:
    return ck.save_checkpoint(Paths(home).run_checkpoints(run, phase), step, {"w": torch.full((2,), float(step))},
                              [{}], {"run_id": run, "phase": phase, "num_iterations": total, **meta})


def cfg(home: Path):
    return load_config(flags={"home": str(home)}, environ={}).config


# ---------------------------------------------------------------------------------------------------
# which checkpoint `-i PHASE` means

def test_the_newest_finished_checkpoint_wins_over_a_newer_unfinished_one(home):
    save(home, "old-done", "sft", 5, 5)
    save(home, "newer-done", "sft", 8, 8)
    save(home, "newest-unfinished", "sft", 3, 100)
    assert [c.run for c in find_checkpoints(Paths(home), "sft")] == ["newer-done", "old-done", "newest-unfinished"]
    found, loaded = load_phase_checkpoint(Paths(home), "sft", quiet=True)
    assert found.run == "newer-done" and found.describe(loaded) == "sft model: run newer-done, step 8 (finished)"
    found, loaded = load_phase_checkpoint(Paths(home), "sft", run="newest-unfinished", quiet=True)
    assert found.describe(loaded) == "sft model: run newest-unfinished, step 3 (unfinished: step 3 of 100)"


def test_only_unfinished_checkpoints_are_still_usable(home):
    save(home, "interrupted", "base", 7, 400)
    found, loaded = load_phase_checkpoint(Paths(home), "base", quiet=True)
    assert (found.run, loaded.step, found.finished) == ("interrupted", 7, False)


def test_step_depth_and_run_filters(home):
    save(home, "a", "base", 4, 4, model_config={"n_layer": 2})
    save(home, "b", "base", 6, 6, model_config={"n_layer": 4})
    save(home, "b", "base", 3, 6, model_config={"n_layer": 4})
    assert [c.run for c in find_checkpoints(Paths(home), "base", depth=2)] == ["a"]
    assert [c.run for c in find_checkpoints(Paths(home), "base", step=3)] == ["b"]
    _, loaded = load_phase_checkpoint(Paths(home), "base", step=3, quiet=True)
    assert loaded.step == 3
    with pytest.raises(UsageError, match="no step 5 of base checkpoint"):
        find_checkpoints(Paths(home), "base", step=5)
    with pytest.raises(UsageError, match="at depth 12"):
        find_checkpoints(Paths(home), "base", depth=12)
    with pytest.raises(UsageError, match="no run named 'c'.*nearest: a|no run named 'c'"):
        find_checkpoints(Paths(home), "base", run="c")


def test_a_run_whose_checkpoints_are_all_damaged_falls_back_to_the_next_run(home, capsys):
    save(home, "good", "base", 4, 4)
    bad = save(home, "newer", "base", 9, 9)
    (bad / ck.MODEL_FILE).write_bytes(b"junk")
    found, loaded = load_phase_checkpoint(Paths(home), "base")
    assert found.run == "good" and loaded.step == 4
    err = capsys.readouterr().err
    assert "newer" in err and "checksum mismatch" in err and "trying the next run" in err
    with pytest.raises(UsageError, match="not usable|no complete checkpoint"):
        load_phase_checkpoint(Paths(home), "base", run="newer", quiet=True)  # a named run never falls back


def test_no_checkpoint_names_the_command_that_makes_one(home):
    with pytest.raises(UsageError) as e:
        find_checkpoints(Paths(home), "mid")
    assert "nanochat train mid" in e.value.fix


# ---------------------------------------------------------------------------------------------------
# the manifest

def test_manifest_updates_from_two_writers_are_both_kept(home):
    """A training run and an eval recording into the same run at once: no update is lost."""
    m = Manifest.create(Paths(home), "r", cfg(home), ["base"])
    other = Manifest.load(Paths(home).run_dir("r"))

    def trainer():
        for i in range(40):
            m.update_phase("base", status="running", step=i)

    def evaluator():
        for i in range(40):
            other.update(lambda data, i=i: data.setdefault("evals", {}).__setitem__(f"e{i}", i))

    threads = [threading.Thread(target=trainer), threading.Thread(target=evaluator)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = Manifest.load(Paths(home).run_dir("r")).data
    assert final["phases"]["base"]["step"] == 39 and len(final["evals"]) == 40


@pytest.mark.parametrize("content", ["[1, 2]", "{", '{"run_id": "r", "phases": [1]}', '"text"', ""])
def test_a_damaged_manifest_is_one_line_naming_the_file(home, run_cli, content):
    run_dir = Paths(home).run_dir("r")
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(content)
    with pytest.raises(PreflightError, match="manifest.json"):
        load_named_run(Paths(home), "r")
    assert list_runs(Paths(home)) == []  # skipped, with a warning
    for args in (("resume", "--run", "r"), ("report", "--run", "r")):
        r = run_cli(*args)
        assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1 and "manifest.json" in r.stderr, r.stderr
    r = run_cli("runs", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["problem"], r.stderr


# ---------------------------------------------------------------------------------------------------
# nanochat runs / runs rm

def test_runs_lists_every_run_and_rm_deletes_one_after_confirmation(home, run_cli):
    save(home, "keep", "base", 4, 4)
    Manifest.create(Paths(home), "keep", cfg(home), ["base"]).update_phase("base", status="done", step=4,
                                                                          num_iterations=4)
    save(home, "drop", "base", 2, 10)
    r = run_cli("runs", "--json")
    assert r.returncode == 0, r.stderr
    runs = {x["name"]: x for x in json.loads(r.stdout)}
    assert runs["keep"]["phases"]["base"] == {"status": "done", "step": 4, "num_iterations": 4, "checkpoints": [4]}
    assert runs["drop"]["phases"]["base"]["checkpoints"] == [2] and runs["drop"]["bytes"] > 0
    table = run_cli("runs")
    assert "keep" in table.stdout and "base done 4/4" in table.stdout
    r = run_cli("runs", "rm", "drop")  # no terminal, no --yes: refuse
    assert r.returncode == 2 and "--yes" in r.stderr and (home / "runs" / "drop").is_dir()
    r = run_cli("runs", "rm", "drop", "--yes")
    assert r.returncode == 0 and "deleted run drop" in r.stdout and not (home / "runs" / "drop").exists()
    assert (home / "runs" / "keep").is_dir()
    r = run_cli("runs", "rm", "drop", "--yes")
    assert r.returncode == 2 and "no run named 'drop'" in r.stderr


def test_a_run_being_written_cannot_be_removed(home):
    save(home, "busy", "base", 2, 10)
    with writing_run(Paths(home), "busy", "train base"):
        pass  # re-entrant in one process: the real test is the subprocess one below
    import subprocess
    import sys

    code = ("import sys, time; from pathlib import Path; from nanochat_cli.paths import Paths; "
            "from nanochat_cli.runs import writing_run\n"
            "with writing_run(Paths(sys.argv[1]), 'busy', 'train base'):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(PreflightError, match=f"pid {p.pid}"):
            remove_run(Paths(home), "busy")
        assert (home / "runs" / "busy").is_dir()
    finally:
        p.kill()
        p.wait()
    remove_run(Paths(home), "busy")  # the holder died: its lock went with it
    assert not (home / "runs" / "busy").exists()


# ---------------------------------------------------------------------------------------------------
# a home of the first layout

def _tree_hashes(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_a_home_of_the_first_layout_is_migrated_on_first_use(home, run_cli):
    dirs = make_legacy_home(home)
    before = {run: {s: _tree_hashes(d / ck.step_dir_name(s)) for s in LEGACY_STEPS} for run, d in dirs.items()}
    r = run_cli("chat", "-i", "base", "--run", "first", "-p", "The", "--max-tokens", "3", "-t", "0")
    assert r.returncode == 0, r.stderr
    assert "moved 4 checkpoint(s) of the first layout" in r.stderr and "run first, step 4" in r.stderr
    assert not (home / "checkpoints").exists()  # emptied and removed; nothing deleted
    for run in dirs:
        for s in LEGACY_STEPS:
            assert _tree_hashes(home / "runs" / run / "checkpoints" / "base" / ck.step_dir_name(s)) == before[run][s]
    # first's manifest named the shared d2 (which held second's model): it now names first's own checkpoint
    first = json.loads((home / "runs" / "first" / "manifest.json").read_text())["phases"]["base"]
    assert first["checkpoint"] == str(home / "runs" / "first" / "checkpoints" / "base" / "step_000004")
    # the migrated format-1 checkpoints resume and answer; a second command does not migrate again
    r = run_cli("resume", "--phase", "base", "--run", "first", "--dry-run")
    assert r.returncode == 0 and "already done" in r.stdout, r.stderr
    r = run_cli("chat", "-i", "base", "-p", "The", "--max-tokens", "3")
    assert r.returncode == 0 and "moved" not in r.stderr and "run second" in r.stderr, r.stderr


def test_migration_never_overwrites_an_existing_run_checkpoint(home, capsys):
    from nanochat_cli.legacy_layout import migrate_if_needed

    dirs = make_legacy_home(home)
    clash = save(home, "second", "base", 4, 4)  # runs/second already has a step 4 (e.g. copied by hand)
    mine = _tree_hashes(clash)
    migrate_if_needed(Paths(home))
    assert _tree_hashes(clash) == mine and (dirs["second"] / "step_000004").is_dir()
    assert "already exists (both are kept)" in capsys.readouterr().err
