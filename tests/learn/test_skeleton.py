"""The skeleton is the reference with the components cut out; the reference's note to its maintainers
(learn mode reads that file by pattern) stays out of the learner's copy."""

from __future__ import annotations

from nanochat_cli.learn import skeleton


def test_maintainer_note_stays_in_the_reference(reference_text, skeleton_text):
    docstring = reference_text.split('"""')[1]
    assert f"\n{skeleton.MAINTAINER_NOTES} learn mode matches this file's lines by pattern" in docstring
    notes = skeleton_text.split("Notes from the reference:\n")[1].split('"""')[0]
    assert notes.strip() and notes.strip() in docstring
    assert skeleton.MAINTAINER_NOTES not in skeleton_text and "tests/learn" not in skeleton_text
