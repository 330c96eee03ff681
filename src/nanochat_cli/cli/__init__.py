"""The `nanochat` command: one Typer app that only wires groups (one module per group).

No logic and no heavy imports here: `nanochat --help` must stay fast, so torch, datasets and wandb
are imported inside the commands that use them. `main()` is the single place where a NanochatError
becomes one line on stderr and an exit code (docs/reference/exit-codes.md: 0 ok, 1 failure, 2 bad input, 3 preflight).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import click
import typer

from nanochat_cli import __version__
from nanochat_cli.cli import (bench, chat, config_cmd, data, doctor, eval_cmd, interop, learn, report, resume, runs,
                              serve, slurm, speedrun, tokenizer, train)
from nanochat_cli.errors import EXIT_FAILURE, EXIT_USAGE, NanochatError
from nanochat_cli.signals import Interrupted, exit_code_for

app = typer.Typer(
    name="nanochat",
    help="From nothing to a chatting GPT: data, tokenizer, base/mid/SFT/RL training, eval and chat — "
         "on a laptop CPU or a Slurm cluster, with the same commands and config.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Start here: `nanochat speedrun` (whole pipeline on the embedded cpu-tiny profile).",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nanochat-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    # str, not Path: click would turn --home '' into Path('.') (the current directory) before the config's
    # validation could see that it is empty.
    home: Annotated[Optional[str], typer.Option(
        "--home", help="Root of all nanochat files [env: NANOCHAT_HOME; default ~/.cache/nanochat].")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = {**(ctx.obj or {}), "home": home}


app.add_typer(data.app, name="data")
app.add_typer(tokenizer.app, name="tokenizer")
app.add_typer(train.app, name="train")
app.command("resume")(resume.resume)
app.add_typer(runs.app, name="runs")
app.add_typer(eval_cmd.app, name="eval")
app.command("chat", epilog=chat.EPILOG)(chat.chat)
app.command("serve", epilog=serve.EPILOG)(serve.serve)
app.add_typer(learn.app, name="learn")
app.add_typer(slurm.app, name="slurm")
app.add_typer(config_cmd.app, name="config")
app.command("doctor")(doctor.doctor)
app.add_typer(bench.app, name="bench")
app.command("report")(report.report)
app.command("speedrun")(speedrun.speedrun)
app.add_typer(interop.export_app, name="export")
app.add_typer(interop.import_app, name="import")


@app.command("workers-outcome", hidden=True)
def _workers_outcome(directory: Annotated[str, typer.Argument(help="A NANOCHAT_LAUNCH_DIR the workers wrote.")]) -> int:
    """Print the first failing rank's error line once and exit with its code (the Slurm job's `launch`)."""
    from pathlib import Path

    from nanochat_cli.launch import outcome, read_exit_records

    return outcome(read_exit_records(Path(directory)), {}, None)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; turn known errors into one line + exit code. A worker started by a launching
    nanochat process (launch.py) leaves its code and line to that process instead, which prints it once."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code, line = _run(argv)
    except BaseException as e:  # a bug (traceback) or an exit we do not translate
        if not isinstance(e, (SystemExit, KeyboardInterrupt)):
            from nanochat_cli.launch import record_crash

            if record_crash(e):  # another rank failed first: this one only lost its peer
                sys.exit(EXIT_FAILURE)
        raise
    _leave(code, line)


def _run(argv: list[str]) -> tuple[int, str | None]:
    """(exit code, error line or None) of one command."""
    try:
        # obj: the argv as given, for commands that start workers running the same command (launch.py)
        rv = app(args=argv, prog_name="nanochat", standalone_mode=False, obj={"argv": argv})
        return (rv if isinstance(rv, int) else 0), None
    except NanochatError as e:
        return e.exit_code, e.one_line()
    except click.exceptions.NoArgsIsHelpError as e:
        typer.echo(e.ctx.get_help())
        return 0, None
    except click.UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        return EXIT_USAGE, " ".join(e.format_message().split()) + hint
    except click.exceptions.Exit as e:
        return e.exit_code, None
    except click.exceptions.Abort:
        return 130, "aborted"
    except click.ClickException as e:
        return e.exit_code, " ".join(e.format_message().split())
    except KeyboardInterrupt:
        return 130, "interrupted (Ctrl-C); nothing half-written was kept"
    except Interrupted as e:
        return exit_code_for(e.signal_name), f"stopped by {e.signal_name}; nothing half-written was kept"
    except (MemoryError, RuntimeError) as e:
        if os.environ.get("NANOCHAT_DEBUG") or not _out_of_memory(e):
            raise
        # A batch or model too big for this machine: an input to change, not a bug to report.
        detail = " ".join(str(e).split())[:200]
        return EXIT_FAILURE, (f"out of memory ({detail or type(e).__name__}) — fix: lower the batch size "
                              "(train.device_batch_size, --device-batch-size, bench --batch) or the model size; "
                              "NANOCHAT_DEBUG=1 shows the traceback")
    except OSError as e:
        if os.environ.get("NANOCHAT_DEBUG"):
            raise
        # Disk full, permission denied, ...: not a bug of ours, so one line instead of a traceback.
        return EXIT_FAILURE, (f"{e.strerror or e} ({e.filename or ''})".replace(" ()", "")
                              + " — set NANOCHAT_DEBUG=1 for details")


def _leave(code: int, line: str | None) -> None:
    from nanochat_cli.launch import write_exit_record

    sys.stdout.flush()
    if not write_exit_record(code, line) and line is not None:
        _fail(line, code)
    sys.exit(code)


def _out_of_memory(e: BaseException) -> bool:
    # torch raises torch.OutOfMemoryError on CUDA and a plain RuntimeError from its CPU allocator; matched by
    # name and text so that importing this module does not import torch.
    text = str(e)
    return (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text or "CUDA out of memory" in text)


def _fail(line: str, code: int) -> None:
    sys.stderr.write(f"Error: {line}\n")
    sys.exit(code)
