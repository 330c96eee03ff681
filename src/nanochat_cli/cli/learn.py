"""`nanochat learn ...`: write your own GPT, one NotImplementedError at a time.

Learn commands take a workspace directory, not a Config: learn mode runs at its own fixed tiny size, and
skipping the config (pydantic, ~0.35 s) keeps `learn step` inside its 3 s budget.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nanochat_cli.cli.options import JsonOpt
from nanochat_cli.learn.guard import DEFAULT_TIME_LIMIT

app = typer.Typer(help="Learn mode: implement the transformer yourself, guided step by step.", no_args_is_help=True,
                  epilog="Start: `nanochat learn init` then `nanochat learn step` (or `nanochat learn watch`).")

# str, not Path: click turns '' into Path('.'), so an empty argument would quietly mean the current directory.
DirArg = Annotated[Optional[str], typer.Argument(help="Workspace directory [default: ./nanochat-learn].",
                                                  show_default=False)]
WsOpt = Annotated[Optional[str], typer.Option("--workspace", "-w", help="Workspace directory "
                                               "[default: ./nanochat-learn].", show_default=False)]
ComponentArg = Annotated[str, typer.Argument(help="Component name (`nanochat learn status` lists them).")]
# Not a Config field: learn commands skip loading the config (~0.35 s of the 3 s step budget).
TimeLimitOpt = Annotated[float, typer.Option("--time-limit", min=0, help="Seconds your code may run in one step "
                                             "before it is stopped as an endless loop (0: no limit).")]


def _limit(seconds: float) -> float | None:
    return seconds or None


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown: with torch loaded, tearing down takes
    0.7–1 s (measured on 2 cores), a third of the 3 s `learn step` budget. Everything is written and
    flushed by then (progress writes are atomic), so there is nothing left for teardown to do."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _record(ws, report) -> None:
    from nanochat_cli.learn import progress
    from nanochat_cli.learn.components import COMPONENTS

    prog = progress.Progress.load(ws.progress)
    prog.record(report.results)
    prog.save(ws.progress, COMPONENTS)


@app.command("init")
def init(workspace: DirArg = None,
         force: Annotated[bool, typer.Option("--force", help="Start over: back up the existing gpt.py and "
                                             "PROGRESS.md to backups/<time>/ first.")] = False,
         json: JsonOpt = False) -> None:
    """Write the skeleton GPT and the progress file into your workspace."""
    from nanochat_cli.cli import output
    from nanochat_cli.learn import workspace as wsmod

    res = wsmod.init(workspace, force=force)
    if json:
        output.emit_json(res)
        return
    if res["backup"]:
        output.info(f"backed up your previous work to {res['backup']}")
    output.result(f"wrote {res['gpt']} ({len(res['components'])} components to implement) and {res['progress']}")
    output.info(f"next: nanochat learn step {res['workspace']}")


@app.command("step")
def step(workspace: DirArg = None, json: JsonOpt = False, time_limit: TimeLimitOpt = DEFAULT_TIME_LIMIT) -> None:
    """Run one tiny training iteration with your model; stop at the next TODO or mismatch.

    Exit code 0 when every component matches the reference, 1 while there is work left."""
    from nanochat_cli.cli import output
    from nanochat_cli.learn import workspace as wsmod

    ws = wsmod.require(workspace)  # before importing torch: a bad path answers at once
    from nanochat_cli.learn import check, display

    report = check.run_step(ws.gpt, stop_first=True, time_limit=_limit(time_limit))
    _record(ws, report)
    if json:
        output.emit_json(display.report_json(report))
    else:
        output.result(display.report_text(report))
    _exit_now(0 if report.complete else 1)


@app.command("status")
def status(workspace: DirArg = None, json: JsonOpt = False, time_limit: TimeLimitOpt = DEFAULT_TIME_LIMIT) -> None:
    """Checklist of components in execution order: done, failing, todo (also written to PROGRESS.md)."""
    from nanochat_cli.cli import output
    from nanochat_cli.learn import workspace as wsmod

    ws = wsmod.require(workspace)  # before importing torch: a bad path answers at once
    from nanochat_cli.learn import check, display

    report = check.run_step(ws.gpt, stop_first=False, time_limit=_limit(time_limit))
    _record(ws, report)
    if json:
        output.emit_json(display.report_json(report))
        _exit_now(0)
    done = sum(1 for s, _ in report.results.values() if s == "done")
    output.result("\n".join([f"{ws.root}: {done}/{len(report.results)} components match the reference",
                             *display.checklist_lines(report.results)]))
    _exit_now(0)


@app.command("check")
def check_cmd(component: Annotated[Optional[str], typer.Argument(
                  help="Component to check [default: all].", show_default=False)] = None,
              workspace: WsOpt = None, json: JsonOpt = False,
              time_limit: TimeLimitOpt = DEFAULT_TIME_LIMIT) -> None:
    """Check a component (or all) against the reference; TODOs elsewhere are stood in by the reference."""
    from nanochat_cli.cli import output
    from nanochat_cli.learn import workspace as wsmod
    from nanochat_cli.learn.components import get

    ws = wsmod.require(workspace)
    name = get(component).name if component else None
    from nanochat_cli.learn import check, display

    report = check.run_step(ws.gpt, stop_first=False, time_limit=_limit(time_limit))
    _record(ws, report)
    findings = [f for f in report.findings if name is None or f.component == name]
    if json:
        data = display.report_json(report)
        if name:
            data["findings"] = [f for f in data["findings"] if f["component"] == name]
            data["components"] = [c for c in data["components"] if c["name"] == name]
        output.emit_json(data)
    else:
        lines = []
        for f in findings:
            lines += display.finding_text(f) + [""]
        results = {k: v for k, v in report.results.items() if name is None or k == name}
        lines += display.checklist_lines(results)
        output.result("\n".join(lines))
    statuses = [s for k, (s, _) in report.results.items() if name is None or k == name]
    _exit_now(1 if any(s != "done" for s in statuses) else 0)


@app.command("hint")
def hint(component: Annotated[Optional[str], typer.Argument(
             help="Component [default: the first one not done].", show_default=False)] = None,
         workspace: WsOpt = None,
         level: Annotated[Optional[int], typer.Option("--level", help="Show this level instead of the next.")] = None,
         json: JsonOpt = False) -> None:
    """Progressive hints: each call shows the next level (remembered in PROGRESS.md)."""
    from nanochat_cli.cli import output
    from nanochat_cli.learn import workspace as wsmod

    res = wsmod.hint(workspace, component, level)
    if json:
        output.emit_json(res)
        return
    output.result(f"{res['component']} ({res['title']}) — hint {res['level']}/{res['levels']}:\n  {res['hint']}")
    output.info(f"({res['next']})")


@app.command("reset")
def reset(component: ComponentArg, workspace: WsOpt = None, json: JsonOpt = False) -> None:
    """Put one component back to its skeleton TODO (your file is backed up first)."""
    from nanochat_cli.cli import output
    from nanochat_cli.learn import workspace as wsmod

    res = wsmod.reset(workspace, component)
    if json:
        output.emit_json(res)
        return
    output.result(f"reset {res['component']} in {res['gpt']}; previous version saved in {res['backup']}")


@app.command("solution")
def solution(component: ComponentArg, workspace: WsOpt = None,
             yes: Annotated[bool, typer.Option("--yes", "-y", help="Show it without asking.")] = False,
             apply: Annotated[bool, typer.Option("--apply", help="Also put it into your gpt.py (backed up "
                                                 "first).")] = False) -> None:
    """Show the reference implementation of a component (asks first: it is a spoiler)."""
    from nanochat_cli.cli import output
    from nanochat_cli.errors import UsageError
    from nanochat_cli.learn import workspace as wsmod
    from nanochat_cli.learn.components import get

    comp = get(component)
    if not yes:
        import sys

        if not sys.stdin.isatty():
            raise UsageError("`learn solution` asks before showing a spoiler, and there is no terminal to ask",
                             f"pass --yes: `nanochat learn solution {comp.name} --yes`")
        if not typer.confirm(f"Show the reference solution of {comp.name}? Try `nanochat learn hint {comp.name}` "
                             f"first", default=False):
            output.info("not shown")
            return
    output.result(f"# reference {comp.target} — {comp.title}\n{wsmod.solution(comp.name)}")
    if apply:
        res = wsmod.apply_solution(workspace, comp.name)
        output.info(f"put into {res['gpt']}; previous version saved in {res['backup']}")


@app.command("watch")
def watch(workspace: DirArg = None,
          interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between checks of "
                                                  "the file.")] = 0.5,
          time_limit: TimeLimitOpt = DEFAULT_TIME_LIMIT) -> None:
    """Re-run `learn step` every time you save gpt.py (Ctrl-C to stop)."""
    from nanochat_cli.cli import output
    from nanochat_cli.learn import watch as watchmod
    from nanochat_cli.learn import workspace as wsmod

    import sys

    def show(text: str) -> None:
        output.result(text)
        sys.stdout.flush()  # a pipe or a tee'd log sees each run as it happens

    import math

    if not math.isfinite(interval):  # click's range check lets nan through (every comparison with it is false)
        from nanochat_cli.errors import UsageError

        raise UsageError(f"--interval must be a number of seconds, got {interval}", "e.g. --interval 0.5")
    ws = wsmod.require(workspace)
    runs = watchmod.watch(ws, interval, on_message=output.info, on_report=show, time_limit=_limit(time_limit))
    output.info(f"stopped watching after {runs} run(s)")
