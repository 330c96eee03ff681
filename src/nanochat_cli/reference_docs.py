"""Generate the reference pages from the code itself: every command and option from the Typer app,
every config field from the pydantic model. `python -m nanochat_cli.reference_docs` rewrites
docs/reference/{cli,config}.md; a test fails when the committed pages differ from what this renders,
so the reference can never drift from the code."""

from __future__ import annotations

import sys
from pathlib import Path


def _rows_for(command, path: list[str]) -> list[str]:
    import click

    out = []
    name = " ".join(path)
    if isinstance(command, click.Group):
        if path[1:]:
            out.append(f"\n## `{name}`\n\n{(command.help or '').strip()}\n")
        for sub_name in command.list_commands(None):  # registration order
            sub = command.get_command(None, sub_name)
            if sub is not None and not getattr(sub, "hidden", False):
                out.extend(_rows_for(sub, path + [sub_name]))
        return out
    out.append(f"\n### `{name}`\n\n{(command.help or '').strip().splitlines()[0] if command.help else ''}\n")
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if params:
        out.append("| option | type | default | description |\n|---|---|---|---|")
        for p in params:
            opts = ", ".join(f"`{o}`" for o in (p.opts + p.secondary_opts)) if isinstance(p, click.Option) \
                else f"`{p.name.upper()}` (argument)"
            typ = p.type.name if hasattr(p.type, "name") else str(p.type)
            default = p.default if p.default not in (None, False, ()) and not callable(p.default) else ""
            helptext = (getattr(p, "help", None) or "").replace("|", "\\|").replace("\n", " ")
            out.append(f"| {opts} | {typ} | {default} | {helptext} |")
    if command.epilog:
        out.append("\n" + command.epilog.strip())
    return out


def render_cli_reference() -> str:
    import typer

    from nanochat_cli.cli import app

    root = typer.main.get_command(app)
    lines = ["# Command reference", "", "Generated from the Typer app by `python -m nanochat_cli.reference_docs`;",
             "do not edit by hand. Global options: `--home PATH` (or `$NANOCHAT_HOME`), `--version`, `--help`.",
             "Every command that reads the configuration accepts `--profile` and `--config`."]
    lines += _rows_for(root, ["nanochat"])
    return "\n".join(lines).rstrip() + "\n"


def render_config_reference() -> str:
    from pydantic import BaseModel

    from nanochat_cli.config import Config

    lines = ["# Configuration reference", "",
             "Generated from `nanochat_cli.config.Config` by `python -m nanochat_cli.reference_docs`; do not edit by hand.",
             "Set a field in a TOML file (`[section]` then `key = value`), with an environment variable",
             "(`NANOCHAT_SECTION__KEY`), or with the command's flag where one exists. Defaults are nanochat's d20",
             "speedrun numbers; profiles override many of them (`nanochat config show --profile NAME`).", ""]
    top = []
    for name, f in Config.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.append(f"\n## `[{name}]`\n")
            lines.append("| key | type | default | env | description |\n|---|---|---|---|---|")
            for key, sf in ann.model_fields.items():
                lines.append(_field_row(key, sf, f"NANOCHAT_{name.upper()}__{key.upper()}"))
        else:
            top.append(_field_row(name, f, f"NANOCHAT_{name.upper()}"))
    head = ["## Top level\n", "| key | type | default | env | description |\n|---|---|---|---|---|", *top]
    return "\n".join(lines[:7] + head + lines[7:]).rstrip() + "\n"


def _field_row(key, f, env) -> str:
    typ = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
    typ = typ.replace("|", "\\|")
    default = "" if f.default is None else f.default
    desc = " ".join((f.description or "").split()).replace("|", "\\|")
    return f"| `{key}` | {typ} | {default} | `{env}` | {desc} |"


PAGES = {"cli.md": render_cli_reference, "config.md": render_config_reference}


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "docs" / "reference"
    for name, render in PAGES.items():
        (out_dir / name).write_text(render(), encoding="utf-8")
        print(f"wrote {out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
