"""Turn a learn-mode report into what the learner reads: plain text for the terminal, a dict for --json.

Plain text on purpose (no rich tables): it is read in editors' terminals, in `watch` loops and in CI
logs, and importing rich would cost ~0.1 s of the 3 s step budget. The first line always names the
component and `gpt.py:LINE`, so an editor can jump there.
"""

from __future__ import annotations

from dataclasses import asdict

from nanochat_cli.learn.components import BY_NAME, COMPONENTS

MARK = {"done": "✓", "failing": "✗", "todo": "·"}


def finding_text(f, hint_cmd: str = "nanochat learn hint") -> list[str]:
    comp = BY_NAME.get(f.component) if f.component else None
    title = f"{f.component} ({comp.title})" if comp else (f.component or "your model")
    where = f" at {f.where}" if f.where else ""
    head = {"todo": f"TODO {title}{where}",
            "error": f"ERROR in {title}{where}",
            "mismatch": f"MISMATCH in {title}{where}"}[f.kind]
    out = [head]
    if f.code:
        out.append(f"    {f.code}")
    out.append(f"  what:      {f.message}" if f.kind != "todo" else f"  must compute: {comp.computes if comp else f.message}")
    if f.inputs:
        out.append("  received:  " + ", ".join(f"{k}: {v}" for k, v in f.inputs.items()))
    if f.expected:
        out.append(f"  expected:  {f.expected}")
    if f.got and f.kind != "todo":
        out.append(f"  got:       {f.got}")
    if f.max_error is not None and f.max_error != float("inf"):
        out.append(f"  max error: {f.max_error:.3g}")
    if f.cause:
        out.append(f"  likely cause: {f.cause}")
    if comp:
        if f.kind == "todo":
            out.append(f"  hint:      {comp.hints[0]}")
        out.append(f"  next:      `{hint_cmd} {comp.name}` for more · docs/explanation/learn/components.md#{comp.name}")
    return out


def checklist_lines(results: dict) -> list[str]:
    lines = []
    for i, c in enumerate(COMPONENTS, 1):
        if c.name not in results:
            continue
        status, note = results[c.name]
        lines.append(f"  {MARK.get(status, '·')} {i:2d}. {c.name:<13} {status:<8} {note}")
    return lines


def report_text(report) -> str:
    done = sum(1 for s, _ in report.results.values() if s == "done")
    out = []
    for f in report.findings:
        out += finding_text(f)
        out.append("")
    if report.curve:
        c = report.curve
        out.append("All components match the reference. Loss over "
                   f"{len(c['yours'])} AdamW steps (yours vs reference):")
        for i, (a, b) in enumerate(zip(c["yours"], c["reference"])):
            if i in (0, len(c["yours"]) - 1) or i % 3 == 0:
                out.append(f"  step {i:2d}: {a:.4f}  {b:.4f}")
        out.append("  curves match." if c["match"] else f"  curves differ by up to {c['max_difference']:.3g}.")
        out.append("Train it for real: nanochat train base --model " + report.workspace.rstrip("/") + "/gpt.py")
        out.append("")
    out.append(f"Progress: {done}/{len(COMPONENTS)} components match the reference "
               f"({report.seconds:.2f} s)")
    return "\n".join(out)


def report_json(report) -> dict:
    return {"workspace": report.workspace, "complete": report.complete,
            "findings": [asdict(f) for f in report.findings],
            "components": [{"name": n, "status": s, "note": note} for n, (s, note) in report.results.items()],
            "curve": report.curve, "seconds": round(report.seconds, 3)}
