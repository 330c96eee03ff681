"""`nanochat export hf`: models out to transformers (interop/)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ModelDepthOpt, ModelRunOpt, ProfileOpt, StepOpt, build_config

EXPORT_EPILOG = ("Examples: `nanochat export hf --out ./my-model` (the newest finished SFT model) · "
                 "`nanochat export hf -i base --run exp1 --out ./exp1-base` · `--no-verify` skips the parity check "
                 "in transformers (it needs `pip install 'nanochat-cli[hf]'`). An existing non-empty --out is "
                 "refused; nothing is written unless the export checks out.")

export_app = typer.Typer(help="Export a model to another format.", no_args_is_help=True)

VerifyOpt = Annotated[bool, typer.Option(
    "--verify/--no-verify", help="Load the result in transformers and compare logits, greedy tokens and token ids "
                                 "with ours (needs the hf extra).")]


def _print_notes(notes) -> None:
    for note in notes:
        output.info(f"note: {note}")


@export_app.command("hf", epilog=EXPORT_EPILOG)
def export_hf(ctx: typer.Context,
              out: Annotated[str, typer.Option("--out", "-o", help="Directory to create (must not exist, or be empty).")],
              source: Annotated[str, typer.Option("-i", "--source", help="base, mid or sft.")] = "sft",
              run: ModelRunOpt = None, step: StepOpt = None, depth: ModelDepthOpt = None,
              verify: VerifyOpt = True,
              dtype: Annotated[str, typer.Option(
                  "--dtype", help="Weights as float32 (exact) or bfloat16 (half the size).")] = "float32",
              profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Write a model as a transformers NanoChatForCausalLM directory (weights, tokenizer, chat template, card)."""
    cfg = build_config(ctx, profile, config).config
    from nanochat_cli.interop.export_hf import export_hf as run_export
    from nanochat_cli.interop.verify import summary

    result = run_export(cfg, source, out, run=run, step=step, depth=depth, verify=verify, weights=dtype,
                        say=output.info)
    _print_notes(result.notes)
    if json:
        return output.emit_json(result.to_json())
    if result.verified:
        output.info(f"verified: {summary(result.verified)}")
    output.result(f"exported the {result.description} to {result.out} ({', '.join(result.files)})")
