"""`nanochat data fetch|status`: get every dataset a run needs before going offline, and prove it loads."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli import output
from nanochat_cli.cli.options import ConfigOpt, JsonOpt, ProfileOpt, build_config
from nanochat_cli.errors import NanochatError, PreflightError, UsageError

app = typer.Typer(help="Download and verify datasets (run on a node with internet).", no_args_is_help=True)

FETCH_EPILOG = """Examples:

  nanochat data fetch base                       # cpu-tiny: builds the embedded corpus, no network

  nanochat data fetch base --profile a100x8      # 240 fineweb-edu shards (~24 GB)

  nanochat data fetch base --source fineweb --shards 8 --base-url https://mirror.example/fineweb

  nanochat data fetch mid sft eval --profile a100x8   # mid/SFT/eval datasets, bundle, word list (no shards)

  nanochat data fetch all --profile a100x8       # shards (~24 GB) + everything above"""


def _print_report(report, as_json: bool, title: str) -> None:
    if as_json:
        output.emit_json(report.to_json())
        return
    output.table(title, ["item", "config", "split", "rows", "status", "detail"],
                 [(r.item, r.config, r.split, r.rows, r.status,
                   r.detail if r.status == "ok" else f"{r.detail} — fix: {r.fix}") for r in report.rows])


@app.command("fetch", epilog=FETCH_EPILOG)
def fetch(ctx: typer.Context,
          what: Annotated[Optional[list[str]], typer.Argument(
              help="base, mid, sft, eval or all; several at once: `mid sft eval` [default: base]")] = None,
          shards: Annotated[Optional[int], typer.Option(
              "--shards", help="fineweb shards to fetch, 2–1823; the last is validation (data.shards).")] = None,
          base_url: Annotated[Optional[str], typer.Option(
              "--base-url", help="Mirror for fineweb shards (data.base_url).")] = None,
          source: Annotated[Optional[str], typer.Option(
              "--source", help="Pretraining corpus: embedded or fineweb (data.source).")] = None,
          hf_endpoint: Annotated[Optional[str], typer.Option(
              "--hf-endpoint", help="Hugging Face Hub endpoint or mirror (data.hf_endpoint).")] = None,
          workers: Annotated[Optional[int], typer.Option(
              "--workers", help="Parallel shard downloads (data.fetch_workers).")] = None,
          retries: Annotated[Optional[int], typer.Option(
              "--retries", help="Retries per file, with exponential backoff (data.retries).")] = None,
          profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Download what a phase needs, verify it by loading it, and report a table."""
    from nanochat_cli.data import hub

    words = what or ["base"]
    phases = hub.parse_phases(words)
    cfg = build_config(ctx, profile, config, {
        "data.shards": shards, "data.base_url": base_url, "data.source": source, "data.hf_endpoint": hf_endpoint,
        "data.fetch_workers": workers, "data.retries": retries}).config
    if cfg.data.source == "embedded" and (shards is not None or base_url is not None):
        raise UsageError("--shards and --base-url apply to fineweb shards, but data.source is 'embedded'",
                         "add --source fineweb (or use --profile a100x8)")
    if phases == ["base"]:
        return _fetch_base(cfg, json)
    report = hub.fetch(cfg, phases)
    _print_report(report, json, f"data for {' '.join(words)}")
    if report.problems:
        raise NanochatError(report.problem_line(), f"run `{report.fix_command()}` again; "
                            "check the network or --hf-endpoint if it keeps failing")


def _fetch_base(cfg, json: bool) -> None:
    from nanochat_cli.data.download import fetch_base

    result = fetch_base(cfg)
    if result.source == "embedded":
        if json:
            output.emit_json({"source": "embedded", "shards": [str(p) for p in result.shard_paths]})
        else:
            output.result(f"{len(result.results)} embedded shards in {result.directory}; "
                          f"validation shard: {result.validation or '-'}")
        return
    if json:
        output.emit_json(result.to_json())
    else:
        counts = {s: sum(r.status == s for r in result.results) for s in ("present", "downloaded", "failed")}
        output.result(f"{len(result.results)} shards in {result.directory}: {counts['present']} already "
                      f"present, {counts['downloaded']} downloaded, {counts['failed']} failed; "
                      f"validation shard: {result.validation}")
    if result.failed:
        raise NanochatError(f"{len(result.failed)} shard(s) failed: " +
                            ", ".join(f"{r.name} ({r.detail})" for r in result.failed[:10]),
                            "run the same command again: finished shards are kept, partial ones resume")


@app.command("status")
def status(ctx: typer.Context,
           what: Annotated[Optional[list[str]], typer.Argument(
               help="base, mid, sft, eval or all, or several (default: what this profile's pipeline needs)")] = None,
           profile: ProfileOpt = None, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Show which datasets are present and load (each is loaded for real, offline); never downloads."""
    from nanochat_cli.data import hub

    chosen = hub.parse_phases(what) if what else None  # bad input fails before the config is built
    cfg = build_config(ctx, profile, config).config
    phases = chosen or hub.phases_needed(cfg)
    label = " ".join(what) if what else " ".join(phases)
    report = hub.check(cfg, phases)
    _print_report(report, json, f"data for {label} (offline check, profile {cfg.profile})")
    if report.problems:
        raise PreflightError(report.problem_line(), f"run `{report.fix_command()}`")
