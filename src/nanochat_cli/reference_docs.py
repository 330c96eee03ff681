"""Generate the reference pages from the code itself: every command and option from the Typer app,
every config field from the pydantic model, and the profiles' numbers (depth, parameters, token budgets, the
speedrun's dry-run estimates) from the profiles, model/sizes.py and speedrun.py.
`python -m nanochat_cli.reference_docs` rewrites docs/reference/{cli,config,profiles}.md; a test fails when the
committed pages differ from what this renders, so the reference can never drift from the code."""

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


def render_profiles_reference() -> str:
    from nanochat_cli.config import slurm_time_seconds
    from nanochat_cli.config_sources import load_config, profile_descriptions, profile_names
    from nanochat_cli.model.sizes import config_counts
    from nanochat_cli.speedrun import CPU_FLOPS_PER_CORE, GPU_MFU, fmt_seconds, estimate
    from nanochat_cli.train.schedule import num_iterations

    cores = 2  # the estimates of CPU profiles assume this many cores (the dry run uses the machine's own)
    lines = ["# Profiles", "",
             "Generated from `src/nanochat_cli/profiles/*.toml`, `model/sizes.py` and the speedrun's dry-run estimate by",
             "`python -m nanochat_cli.reference_docs`; do not edit by hand. `nanochat config show --profile NAME` prints",
             "every resolved value; `nanochat speedrun --profile NAME --dry-run` prints the plan on your machine.", "",
             "| profile | for |", "|---|---|"]
    descriptions = profile_descriptions()
    lines += [f"| `{n}`{' (default)' if n == 'cpu-tiny' else ''} | {descriptions[n]} |" for n in profile_names()]
    lines += ["", "## Model, data and budgets", "",
              "| | " + " | ".join(f"`{n}`" for n in profile_names()) + " |",
              "|---|" + "---|" * len(profile_names())]
    rows: dict[str, list[str]] = {}
    for name in profile_names():
        cfg = load_config(profile=name, environ={}).config
        m, t = cfg.model, cfg.train
        counts = config_counts(cfg)
        steps = num_iterations(cfg, counts["total"])
        base = {e.stage: e for e in estimate(cfg, cpus=cores)}["base"]
        mixtures = f"{cfg.mid.mixture} / {cfg.sft.mixture}"
        cells = {
            "depth × width (heads × head dim)": f"{m.depth} × {m.width:,} ({m.n_heads} × {m.head_dim})",
            "sequence length": f"{m.seq_len:,}",
            "vocabulary": f"{cfg.tokenizer.vocab_size:,}",
            "parameters (total; embedding + lm_head + blocks)": f"{counts['total']:,} ({counts['total'] / 1e6:,.1f} M)",
            "tokens per optimizer step": f"{t.total_batch_size:,} ({t.device_batch_size} × {m.seq_len:,} × "
                                         f"{cfg.world_size} × {t.total_batch_size // (t.device_batch_size * m.seq_len * cfg.world_size)} accumulation)",
            "base steps": f"{steps:,}" + (" (20 tokens per parameter)" if t.num_iterations < 0 else ""),
            "base tokens": f"{steps * t.total_batch_size / 1e6:,.1f} M",
            "mid / SFT steps": " / ".join(f"{getattr(cfg, p).num_iterations:,}" if getattr(cfg, p).num_iterations > 0
                                          else "one pass" for p in ("mid", "sft")),
            "mid / SFT data": mixtures,
            "pretraining corpus": cfg.data.source + (f" ({cfg.data.shards} shards)" if cfg.data.source == "fineweb" else ""),
            "`eval.bpb_tokens`": f"{cfg.eval.bpb_tokens:,}",
            "processes per node (`dist.nproc`)": f"{cfg.dist.nproc}",
            "dry-run estimate of base": f"~{fmt_seconds(base.seconds)}" + (
                f" (at {GPU_MFU:.0%} MFU)" if cfg.train.device == "cuda" else
                f" (at {CPU_FLOPS_PER_CORE / 1e9:.0f} GFLOP/s × {cores} cores)"),
            "`slurm.time`": f"{cfg.slurm.time} ({fmt_seconds(slurm_time_seconds(cfg.slurm.time))})",
        }
        for k, v in cells.items():
            rows.setdefault(k, []).append(v)
    lines += [f"| {k} | " + " | ".join(v) + " |" for k, v in rows.items()]
    lines += ["", "The dry-run estimate is arithmetic (6·N FLOPs per token at an assumed rate), not a measurement; mid,",
              "SFT and the evaluations add to it. Where base alone comes close to `slurm.time` (a100x8), the rendered",
              "job checkpoints on the USR2 that Slurm sends `slurm.signal_seconds` before the limit and requeues itself,",
              "continuing where it stopped; to fit in one allocation instead, raise `--time` (if the partition allows),",
              "or render `--per-phase` (one job per phase, each with its own limit)."]
    return "\n".join(lines) + "\n"


PAGES = {"cli.md": render_cli_reference, "config.md": render_config_reference, "profiles.md": render_profiles_reference}


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "docs" / "reference"
    for name, render in PAGES.items():
        (out_dir / name).write_text(render(), encoding="utf-8")
        print(f"wrote {out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
