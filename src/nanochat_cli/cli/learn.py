"""`nanochat learn ...`: write your own GPT, one NotImplementedError at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nanochat_cli.errors import NotBuiltYet

app = typer.Typer(help="Learn mode: implement the transformer yourself, guided step by step.", no_args_is_help=True)

for _name, _doc in [("init", "Write the skeleton GPT into your workspace."),
                    ("step", "Run one tiny training iteration with your model; stop at the next TODO."),
                    ("status", "Checklist of components: done, failing, todo."),
                    ("hint", "Progressive hints for a component."),
                    ("check", "Check a component against the reference."),
                    ("reset", "Reset a component to its skeleton."),
                    ("solution", "Show the reference implementation of a component."),
                    ("watch", "Re-run `learn step` whenever your file changes.")]:
    def _cmd(workspace: Annotated[Optional[Path], typer.Argument(help="Workspace directory.")] = None,
             _n: str = typer.Option(_name, hidden=True)) -> None:
        raise NotBuiltYet(f"learn {_n}", 8)
    _cmd.__doc__ = _doc
    app.command(_name)(_cmd)
