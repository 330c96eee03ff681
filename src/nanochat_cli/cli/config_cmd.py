"""`nanochat config show|profiles`: the resolved config and where each value came from."""

from __future__ import annotations

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config

app = typer.Typer(help="Show the resolved configuration and the available profiles.", no_args_is_help=True)


@app.command("show", epilog="Examples:\n\n  nanochat config show --profile a100x8\n\n"
                            "  NANOCHAT_TRAIN__DEVICE_BATCH_SIZE=16 nanochat config show --json")
def show(ctx: typer.Context, profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Print every setting, its value and its source (default, profile, file, env or flag)."""
    from nanochat_cli.config import config_to_toml_dict
    from nanochat_cli.config_sources import flatten

    resolved = build_config(ctx, profile, config)
    values = flatten(resolved.config.model_dump(mode="json"))
    if json:
        output.emit_json({"config": config_to_toml_dict(resolved.config),
                          "sources": {k: resolved.source_of(k) for k in values}})
        return
    output.table(f"nanochat config (profile {resolved.config.profile})", ["key", "value", "source"],
                 ([k, v, resolved.source_of(k)] for k, v in values.items()))


@app.command("profiles")
def profiles(json: JsonOpt = False) -> None:
    """List the shipped profiles with a one-line description."""
    from nanochat_cli.config import DEFAULT_PROFILE
    from nanochat_cli.config_sources import profile_descriptions

    desc = profile_descriptions()
    if json:
        output.emit_json([{"name": n, "description": d, "default": n == DEFAULT_PROFILE} for n, d in desc.items()])
        return
    output.table("profiles", ["name", "description"],
                 ([n + (" (default)" if n == DEFAULT_PROFILE else ""), d] for n, d in desc.items()))
