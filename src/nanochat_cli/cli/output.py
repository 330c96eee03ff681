"""The output sink: results to stdout (a table for people, one JSON document with --json), messages
and progress to stderr. Commands print only through here."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable


def emit_json(data: Any, one_line: bool = False) -> None:
    """One JSON document on stdout; `one_line` for results that end up in logs (one line per document)."""
    text = json.dumps(data, default=str) if one_line else json.dumps(data, indent=2, default=str)
    sys.stdout.write(text + "\n")


def info(message: str) -> None:
    """A message for the person at the terminal (stderr, so stdout stays parseable)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def table(title: str | None, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    Console(file=sys.stdout, soft_wrap=True).print(t)


def human_size(n: float) -> str:
    """Bytes for people: 512 B, 3.4 MB, 1.2 GB (powers of 1,000, as disk tools and file managers print)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def result(text: str) -> None:
    sys.stdout.write(text.rstrip("\n") + "\n")
