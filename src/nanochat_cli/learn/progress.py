"""The learner's progress file, `PROGRESS.md`: a checklist kept up to date by `learn step|status|check`,
a learning log and questions to answer.

Design choice: one Markdown file the learner also writes in. Only the block between the
`<!-- learn:status -->` markers is rewritten (checklist + a one-line JSON state with hint levels and
first-pass times); the log and the answers are the learner's and are only ever appended to. The cost:
a learner who edits inside the block loses that edit on the next run (the block says so).
Not a database and not shared between workspaces.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from nanochat_cli.paths import atomic_write_text

OPEN = "<!-- learn:status (rewritten by `nanochat learn`; your edits inside this block are lost) -->"
CLOSE = "<!-- /learn:status -->"
STATE_RE = re.compile(r"<!-- learn:state (\{.*\}) -->")
LOG_HEADING = "## Learning log"
NOT_REACHED = "written; not reached yet"
SYMBOL = {"done": "[x]", "failing": "[!]", "todo": "[ ]"}


@dataclass
class Progress:
    """Status per component, hint level per component, first-pass time per component."""

    status: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    hints: dict[str, int] = field(default_factory=dict)
    passed: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @classmethod
    def load(cls, path: Path) -> "Progress":
        if not path.is_file():
            return cls(text="")
        text = path.read_text(encoding="utf-8")
        m = STATE_RE.search(text)
        state = {}
        if m:
            try:
                state = json.loads(m.group(1))
            except json.JSONDecodeError:
                state = {}
        return cls(status=dict(state.get("status", {})), notes=dict(state.get("notes", {})),
                   hints={k: int(v) for k, v in state.get("hints", {}).items()},
                   passed=dict(state.get("passed", {})), text=text)

    def record(self, results: dict[str, tuple[str, str]], now: _dt.datetime | None = None) -> list[str]:
        """Store each component's (status, note); returns the components that passed for the first time
        (each gets a line in the learning log)."""
        now = now or _dt.datetime.now().astimezone()
        firsts = []
        for name, (status, note) in results.items():
            if note == NOT_REACHED and name in self.status:
                continue  # this run did not get there (e.g. a syntax error): keep what the last run found
            self.status[name] = status
            self.notes[name] = note
            if status == "done" and name not in self.passed:
                self.passed[name] = now.isoformat(timespec="seconds")
                firsts.append(name)
        for name in firsts:
            self.log(f"{now:%Y-%m-%d %H:%M} — `{name}` matches the reference.")
        return firsts

    def log(self, line: str) -> None:
        """Append a line at the end of the learning log section (created if the learner removed it)."""
        lines = self.text.splitlines()
        try:
            at = next(i for i, l in enumerate(lines) if l.strip() == LOG_HEADING)
        except StopIteration:
            lines += ["", LOG_HEADING, ""]
            at = len(lines) - 2
        end = next((i for i in range(at + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        while end > at + 1 and not lines[end - 1].strip():
            end -= 1
        lines.insert(end, f"- {line}")
        self.text = "\n".join(lines) + "\n"

    def next_hint_level(self, name: str, max_level: int) -> int:
        level = min(self.hints.get(name, 0) + 1, max_level)
        self.hints[name] = level
        return level

    def checklist(self, components) -> str:
        rows = []
        for i, c in enumerate(components, 1):
            st = self.status.get(c.name, "todo")
            note = self.notes.get(c.name, "")
            hint = self.hints.get(c.name)
            extra = (f" — {note}" if note else "") + (f" (hint level {hint})" if hint else "")
            rows.append(f"- {SYMBOL.get(st, '[ ]')} {i:2d}. **{c.name}** ({c.title}): {st}{extra}")
        return "\n".join(rows)

    def render_block(self, components) -> str:
        state = json.dumps({"status": self.status, "notes": self.notes, "hints": self.hints,
                            "passed": self.passed}, sort_keys=True)
        done = sum(1 for c in components if self.status.get(c.name) == "done")
        return "\n".join([OPEN, f"## Checklist ({done}/{len(components)} done)", "",
                          self.checklist(components), "", f"<!-- learn:state {state} -->", CLOSE])

    def save(self, path: Path, components) -> None:
        block = self.render_block(components)
        text = self.text
        if OPEN in text and CLOSE in text and text.index(OPEN) < text.index(CLOSE):
            a, b = text.index(OPEN), text.index(CLOSE) + len(CLOSE)
            text = text[:a] + block + text[b:]
        else:  # new file, or the learner deleted the markers: put the block back at the top
            head, sep, rest = text.partition("\n")
            text = (head + "\n\n" + block + "\n" + rest) if head.startswith("# ") else (block + "\n\n" + text)
        self.text = text
        atomic_write_text(path, text)


def initial_text(components) -> str:
    """A fresh PROGRESS.md (the status block is filled in by `Progress.save`)."""
    questions = []
    for c in components:
        if c.questions:
            questions.append(f"### {c.name}")
            questions += [f"- {q}\n  - *Your answer:* " for q in c.questions]
            questions.append("")
    return "\n".join([
        "# Write your own GPT — progress",
        "",
        "Your workspace for `nanochat learn`. Implement the components of `gpt.py` in the order of the",
        "checklist; `nanochat learn step` runs one tiny training iteration with your model and stops at the",
        "next TODO or at the first component that does not match the reference.",
        "",
        LOG_HEADING,
        "",
        "<!-- `nanochat learn step` adds a line when a component first matches the reference; add your own notes. -->",
        "",
        "## Questions to answer",
        "",
        *questions,
    ]) + "\n"
