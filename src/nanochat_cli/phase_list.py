"""The one parser of phase lists on the command line: `--phases base,mid`, `--phase mid,sft`, `all`, `none`.

A list names each phase once, in pipeline order (`mid,base` is refused: the order is the pipeline's, and a
user who typed it probably meant something else); words such as `all` stand for a fixed list. Errors are one
line naming the option and the choices (exit 2).
"""

from __future__ import annotations

from collections.abc import Sequence

from nanochat_cli.errors import UsageError


def parse_phase_list(text: str, choices: Sequence[str], option: str,
                     words: dict[str, Sequence[str]] | None = None) -> tuple[str, ...]:
    """`text` as a tuple of phases from `choices` (in their order), or the list a word in `words` stands for."""
    words = words or {}
    if text in words:
        return tuple(words[text])
    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in chosen if p not in choices]
    accepted = ", ".join([*choices, *words])
    if bad or not chosen:
        raise UsageError(f"unknown phase(s) {', '.join(bad) or repr(text)} for {option}",
                         f"use one of {accepted}, or a comma list such as {','.join(choices[1:3])}")
    if list(chosen) != sorted(set(chosen), key=list(choices).index):
        raise UsageError(f"{option} {text} must list each phase once, in pipeline order",
                         f"write them in the order {','.join(choices)}")
    return chosen
