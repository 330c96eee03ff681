"""Derive the learner's skeleton `gpt.py` from the reference model's source, mechanically.

Every component of the registry has its body (or region) replaced by a TODO block: what it must
compute, the shapes in and out, where the hint and the explanation are, commented debug prints of its
inputs, and a `raise NotImplementedError`. Everything else (imports, signatures, docstrings, helper
methods that are not exercises) is the reference, verbatim. Deriving instead of keeping a second
hand-written copy means the skeleton can never drift from what learners are checked against; the cost
is that a component must be a function or a marked region of the reference (source.py checks that).
"""

from __future__ import annotations

from pathlib import Path

import nanochat_cli
from nanochat_cli.learn import source

HEADER = '''"""Your GPT — a `nanochat learn` workspace.

This is the reference model of nanochat-cli with the interesting parts cut out. Each
`raise NotImplementedError` marks one component; implement them in the order of the checklist:

    nanochat learn step      # one tiny training iteration with YOUR model; stops at the next TODO
    nanochat learn hint      # a hint for the current component (again = a more detailed one)
    nanochat learn status    # the checklist
    nanochat learn watch     # re-run `step` every time you save this file

`learn step` copies the reference's weights into your model and compares every component's output
with the reference's on the same inputs, so a bug is reported where it is, with its likely cause.
When everything matches: `nanochat train base --model {path}` trains your model for real.

Notes from the reference:
'''


# Where the reference's docstring turns to its maintainers (how learn mode reads that file): the rest of
# it is left out of the learner's notes, which are about their own copy.
MAINTAINER_NOTES = "Maintainers:"

# Arguments that are always tensors in the reference (others, like kv_cache or targets, may be None).
TENSOR_NAMES = {"x", "q", "k", "v", "cos", "sin", "idx", "logits", "y"}


def reference_path() -> Path:
    """The reference model's source file (read as text; importing it would import torch)."""
    return Path(nanochat_cli.__file__).parent / "model" / "gpt.py"


def reference_source() -> str:
    path = reference_path()
    if not path.is_file():
        from nanochat_cli.errors import NanochatError
        raise NanochatError(f"the reference model {path} is missing from this installation",
                            "reinstall nanochat-cli")
    return path.read_text(encoding="utf-8")


def placeholder(comp, params: list[str]) -> str:
    """The TODO block that stands in for a component's code."""
    lines = [f"# TODO({comp.name}) {comp.title}: {comp.computes}"]
    for io in comp.shapes:
        lines.append(f"#   {io}")
    lines.append(f"# Stuck? `nanochat learn hint {comp.name}` (again for more) · why it works: "
                 f"docs/explanation/learn/components.md#{comp.name}")
    shown = [p for p in (comp.debug or params) if p not in ("self",)]
    if shown:
        lines.append("# Debug: uncomment to see what `learn step` feeds in:")
        for p in shown:
            if p in TENSOR_NAMES:
                lines.append(f"# print('{comp.name}: {p}', tuple({p}.shape), {p}.dtype)")
            else:
                lines.append(f"# print('{comp.name}: {p} =', {p})")
    lines.append(f'raise NotImplementedError("{comp.name}: {comp.computes} '
                 f'(hint: nanochat learn hint {comp.name})")')
    return "\n".join(lines)


def make_skeleton(ref_text: str, components, workspace_file: str = "./nanochat-learn/gpt.py") -> str:
    """The reference with every component replaced by its placeholder."""
    spans = []
    for comp in components:
        span = source.locate(ref_text, comp, reference=True)
        region = comp.name if comp.is_region else None
        spans.append((span, comp, region))
    # Replace bottom-up so the line numbers of spans not yet replaced stay valid.
    text = ref_text
    for span, comp, region in sorted(spans, key=lambda s: s[0].start, reverse=True):
        text = source.replace(text, span, placeholder(comp, source.function_params(ref_text, comp.target)),
                              region=region)
    return _with_header(text, workspace_file)


def _with_header(text: str, workspace_file: str) -> str:
    """Put the learner's instructions on top of the reference's module docstring."""
    head = HEADER.replace("{path}", workspace_file)
    stripped = text.lstrip()
    for quote in ('"""', "'''"):
        if stripped.startswith(quote):
            body_end = stripped.index(quote, 3)
            notes = stripped[3:body_end].split("\n" + MAINTAINER_NOTES)[0].strip("\n")
            return head + notes + "\n" + stripped[body_end:]
    return head + '"""\n' + text


def solution_text(ref_text: str, comp) -> str:
    """The reference's code for one component (the function's body, or the region)."""
    return source.span_text(ref_text, source.locate(ref_text, comp, reference=True))


def splice_reference(user_text: str, ref_text: str, comp) -> str:
    """The learner's file with one component replaced by the reference's code."""
    span = source.locate(user_text, comp)
    return source.replace(user_text, span, solution_text(ref_text, comp),
                          region=comp.name if comp.is_region else None)


def splice_placeholder(user_text: str, ref_text: str, comp) -> str:
    """The learner's file with one component put back to its TODO."""
    span = source.locate(user_text, comp)
    code = placeholder(comp, source.function_params(ref_text, comp.target))
    return source.replace(user_text, span, code, region=comp.name if comp.is_region else None)
