"""The skeleton stops at the first component; filling components in one by one from the reference
advances `learn step` to the next one each time, in the registry's order, until the model is complete."""

from __future__ import annotations

from nanochat_cli.learn import check, skeleton, source
from nanochat_cli.learn.components import COMPONENTS


def test_skeleton_has_every_component_as_todo(skeleton_text, reference_text):
    for comp in COMPONENTS:
        assert source.is_todo(skeleton_text, comp), comp.name
        assert not source.is_todo(reference_text.replace("raise NotImplementedError", "pass"), comp) or comp.is_region
    assert "NotImplementedError" not in reference_text


def test_step_advances_component_by_component(skeleton_text, reference_text, ws_file):
    ws_file.write_text(skeleton_text)
    reached = []
    for expected in COMPONENTS:
        report = check.run_step(ws_file)
        assert report.findings, f"no finding while {expected.name} is still a TODO"
        f = report.findings[0]
        assert (f.kind, f.component) == ("todo", expected.name), (f, reached)
        line = int(f.where.split(":")[1])
        assert f.where.startswith("gpt.py:") and "NotImplementedError" in ws_file.read_text().splitlines()[line - 1]
        assert f.inputs or expected.check == "init", f"no live inputs shown for {expected.name}"
        assert f.expected, f"no expected output shown for {expected.name}"
        # nothing before this one fails (a component that encloses the TODO cannot be checked yet: it is
        # "written; not reached yet" until the code it calls exists)
        assert all(report.results[c.name][0] != "failing" for c in COMPONENTS[:len(reached)]), report.results
        assert report.results[COMPONENTS[0].name][0] == "done" or not reached
        reached.append(expected.name)
        ws_file.write_text(skeleton.splice_reference(ws_file.read_text(), reference_text, expected))
    report = check.run_step(ws_file)
    assert report.findings == [] and report.complete
    assert report.curve["match"] and len(report.curve["yours"]) > 1
    assert report.curve["yours"][-1] < report.curve["yours"][0]  # it trains


def test_status_mode_checks_written_components_past_todos(skeleton_text, reference_text, ws_file):
    """`status` stands the reference in for TODOs, so a later component is checked before earlier ones exist."""
    text = skeleton_text
    for name in ("mlp", "loss"):
        text = skeleton.splice_reference(text, reference_text, next(c for c in COMPONENTS if c.name == name))
    ws_file.write_text(text)
    report = check.run_step(ws_file, stop_first=False)
    assert report.results["mlp"][0] == "done"
    assert report.results["norm"] == ("todo", "not implemented")
    assert not report.findings


def test_reset_puts_the_placeholder_back(complete_text, reference_text):
    comp = next(c for c in COMPONENTS if c.name == "attention")
    text = skeleton.splice_placeholder(complete_text, reference_text, comp)
    assert source.is_todo(text, comp)
    assert sum(source.is_todo(text, c) for c in COMPONENTS) == 1
    assert skeleton.splice_reference(text, reference_text, comp) == complete_text


def test_debug_prints_run_when_uncommented(skeleton_text, reference_text, ws_file, capsys):
    """Every commented debug print of the skeleton is valid at its place: uncommented, each component
    still stops at its own TODO after printing."""
    text = skeleton_text.replace("# print(", "print(")
    ws_file.write_text(text)
    for comp in COMPONENTS[:6]:
        report = check.run_step(ws_file)
        assert (report.findings[0].kind, report.findings[0].component) == ("todo", comp.name), report.findings[0]
        assert f"{comp.name}:" in capsys.readouterr().out
        ws_file.write_text(skeleton.splice_reference(ws_file.read_text(), reference_text, comp))
