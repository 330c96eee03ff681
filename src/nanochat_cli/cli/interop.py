"""`nanochat export hf` and `nanochat import hf|nanochat`: models out to transformers, and in from it or from
karpathy/nanochat's checkpoints (interop/)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ModelDepthOpt, ModelRunOpt, ProfileOpt, StepOpt, build_config

EXPORT_EPILOG = ("Examples: `nanochat export hf --out ./my-model` (the newest finished SFT model) · "
                 "`nanochat export hf -i base --run exp1 --out ./exp1-base` · `--no-verify` skips the parity check "
                 "in transformers (it needs `pip install 'nanochat-cli[hf]'`). An existing non-empty --out is "
                 "refused; nothing is written unless the export checks out.")
IMPORT_EPILOG = ("Examples: `nanochat import hf ./my-model --run mine` · `nanochat import nanochat "
                 "~/.cache/nanochat/chatsft_checkpoints/d20 --tokenizer ~/.cache/nanochat/tokenizer --run d20` · then "
                 "`nanochat chat --run mine`. A run's phase that already has a model is never written over.")

export_app = typer.Typer(help="Export a model to another format.", no_args_is_help=True)
import_app = typer.Typer(help="Import a model trained elsewhere into a run.", no_args_is_help=True)

VerifyOpt = Annotated[bool, typer.Option(
    "--verify/--no-verify", help="Load the result in transformers and compare logits, greedy tokens and token ids "
                                 "with ours (needs the hf extra).")]
ImportRunOpt = Annotated[Optional[str], typer.Option(
    "--run", help="Run to import into: a new name, or a run without a model of that phase (default: a new run).")]
PhaseOpt = Annotated[Optional[str], typer.Option(
    "--phase", help="Which phase the imported model becomes: base, mid or sft (default: the phase the export or "
                    "nanochat's folder name records, else sft).")]


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


def _report_import(result, json: bool) -> None:
    from nanochat_cli.interop.verify import summary

    _print_notes(result.notes)
    if json:
        return output.emit_json(result.to_json())
    if result.verified:
        output.info(f"verified: {summary(result.verified)}")
    tok = result.tokenizer
    which = (f"tokenizer {tok['fingerprint'][:12]} ({'added' if tok['new'] else 'already stored'})"
             if tok.get("fingerprint") else "the byte-level tokenizer")
    output.result(f"imported {result.source['format']} model as run {result.run}, {result.phase} step {result.step} "
                  f"({result.checkpoint}); {which}; try `nanochat chat -i {result.phase} --run {result.run}`")


@import_app.command("hf", epilog=IMPORT_EPILOG)
def import_hf(ctx: typer.Context,
              directory: Annotated[str, typer.Argument(help="A NanoChatForCausalLM directory (config.json, "
                                                            "model.safetensors, tokenizer.json).")],
              phase: PhaseOpt = None, run: ImportRunOpt = None, verify: VerifyOpt = True,
              profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Import a transformers NanoChatForCausalLM directory as a checkpoint of a run."""
    cfg = build_config(ctx, profile, config).config
    from nanochat_cli.interop.import_hf import import_hf as run_import

    _report_import(run_import(cfg, directory, phase=phase, run=run, verify=verify, say=output.info), json)


@import_app.command("nanochat", epilog=IMPORT_EPILOG)
def import_nanochat(ctx: typer.Context,
                    checkpoint_dir: Annotated[str, typer.Argument(help="nanochat's checkpoint directory (model_<step>"
                                                                       ".pt, meta_<step>.json), e.g. "
                                                                       "base_checkpoints/d20.")],
                    tokenizer: Annotated[Optional[str], typer.Option(
                        "--tokenizer", help="nanochat's tokenizer directory (tokenizer.pkl, token_bytes.pt); "
                                            "default: <checkpoint_dir>/../../tokenizer.")] = None,
                    phase: PhaseOpt = None, step: StepOpt = None, run: ImportRunOpt = None,
                    profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Import a karpathy/nanochat checkpoint (Oct–Dec 2025 layout) as a checkpoint of a run."""
    cfg = build_config(ctx, profile, config).config
    from nanochat_cli.interop.import_nanochat import import_nanochat as run_import

    _report_import(run_import(cfg, checkpoint_dir, tokenizer_dir=tokenizer, phase=phase, step=step, run=run,
                              say=output.info), json)
