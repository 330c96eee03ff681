"""The report card of a run: `<home>/runs/<id>/report.md` plus loss/bpb plots, like nanochat's report.

Everything comes from files the run already wrote (manifest.json, metrics.jsonl, config.toml, checkpoint
meta) plus the environment; nothing is re-evaluated, so a report takes ~1 s (the plots with matplotlib's
Agg backend are most of it). Sections: environment, tokenizer comparison (when `<home>/tokenizer/eval.json`
exists), base eval (CORE or mini-suite, bpb), mid/SFT chat evals in one table, per-phase timings and tokens
seen, estimated cost on GPU profiles (8 GPUs × hours × an hourly price), sample generations. Missing parts
say "not run" instead of disappearing. It does not upload anything or compare runs.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from nanochat_cli.errors import UsageError
from nanochat_cli.paths import PHASES, Paths, atomic_write_bytes, atomic_write_text

# Rough on-demand prices per node-hour (8 GPUs), for an order of magnitude only (nanochat: $24/h 8×H100).
NODE_PRICE_PER_HOUR = {"h100x8": 24.0, "a100x8": 14.0}


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    import torch

    from nanochat_cli import __version__

    env = {"nanochat_cli": __version__, "git_commit": _git_commit(), "python": platform.python_version(),
           "torch": torch.__version__, "platform": platform.platform(), "cpu_count": os.cpu_count(),
           "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
           if torch.cuda.is_available() else []}
    return env


def pick_run(paths: Paths, run_id: str | None):
    from nanochat_cli.train.manifest import Manifest, list_runs

    if run_id:
        if not (paths.run_dir(run_id) / "manifest.json").is_file():
            raise UsageError(f"no run {run_id!r} in {paths.runs}", "list runs with `ls " + str(paths.runs) + "`")
        return Manifest.load(paths.run_dir(run_id))
    runs = list_runs(paths)
    if not runs:
        raise UsageError(f"no runs in {paths.runs}", "train something first: `nanochat speedrun` or `nanochat train base`")
    return runs[-1]


def _read_metrics(path: Path) -> list[dict]:
    from nanochat_cli.track import read_metrics

    return read_metrics(path) if path.is_file() else []


def _plot(records: list[dict], key: str, title: str, out: Path) -> bool:
    series = {}
    for r in records:
        if key in r and isinstance(r[key], (int, float)) and r.get("phase") in PHASES:
            series.setdefault(r["phase"], []).append((r["step"], r[key]))
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for phase, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=phase)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return True


def build_report(cfg, run_id: str | None = None) -> dict:
    """Collect the data, write report.md and the plots; return the data (what --json prints)."""
    paths = Paths.of(cfg)
    manifest = pick_run(paths, run_id)
    run_dir = manifest.run_dir
    records = _read_metrics(run_dir / "metrics.jsonl")
    profile = manifest.data.get("profile") or cfg.profile
    phases = {}
    total_seconds = 0.0
    for phase, entry in manifest.phases.items():
        steps = entry.get("step") or 0
        secs = float(entry.get("train_seconds") or 0.0)
        total_seconds += secs
        # tok_per_s × dt = the step's batch in tokens, so the sum is exact tokens seen (mid/SFT batches differ)
        steps_logged = [r for r in records if r.get("phase") == phase and "tok_per_s" in r and "dt_ms" in r]
        tokens = round(sum(r["tok_per_s"] * r["dt_ms"] / 1000 for r in steps_logged)) if steps_logged else None
        val = [r["val_bpb"] for r in records if r.get("phase") == phase and isinstance(r.get("val_bpb"), (int, float))]
        losses = [r["loss"] for r in records if r.get("phase") == phase and isinstance(r.get("loss"), (int, float))]
        phases[phase] = {"status": entry.get("status"), "step": steps, "num_iterations": entry.get("num_iterations"),
                         "train_seconds": secs, "tokens_seen": tokens, "final_loss": losses[-1] if losses else None,
                         "final_val_bpb": val[-1] if val else None, "checkpoint": entry.get("checkpoint")}
    samples = [r["samples"] for r in records if "samples" in r][-1:] or [[]]
    evals = manifest.data.get("evals", {})
    # speedrun saves `nanochat tokenizer eval`'s result in the run; a standalone copy may sit by the tokenizer
    tok_eval = None
    for p in (run_dir / "tokenizer_eval.json", paths.tokenizer / "eval.json"):
        if p.is_file():
            try:
                tok_eval = json.loads(p.read_text(encoding="utf-8"))
                break
            except ValueError:
                continue
    cost = None
    if profile in NODE_PRICE_PER_HOUR:
        nodes = int(manifest.data.get("nodes") or cfg.dist.nnodes or 1)
        cost = {"price_per_node_hour": NODE_PRICE_PER_HOUR[profile], "nodes": nodes, "hours": total_seconds / 3600,
                "usd": round(NODE_PRICE_PER_HOUR[profile] * nodes * total_seconds / 3600, 2)}
    plots = {}
    if _plot(records, "loss", "training loss", run_dir / "loss.png"):
        plots["loss"] = "loss.png"
    if _plot(records, "val_bpb", "validation bits per byte", run_dir / "bpb.png"):
        plots["bpb"] = "bpb.png"
    data = {"run_id": manifest.run_id, "run_dir": str(run_dir), "profile": profile, "depth": manifest.data.get("depth"),
            "created": manifest.data.get("created"), "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "environment": environment(), "tokenizer_eval": tok_eval, "phases": phases, "evals": evals,
            "total_train_seconds": total_seconds, "cost_estimate": cost, "samples": samples[0], "plots": plots}
    atomic_write_text(run_dir / "report.md", render_markdown(data))
    data["report"] = str(run_dir / "report.md")
    return data


def write_report(cfg, run_id: str | None = None) -> Path:
    """What `nanochat speedrun`'s report stage calls: write the report of `run_id`, return its path."""
    return Path(build_report(cfg, run_id)["report"])


def _f(v, fmt="{:.4f}") -> str:
    return "—" if v is None else (fmt.format(v) if isinstance(v, (int, float)) else str(v))


def render_markdown(d: dict) -> str:
    env = d["environment"]
    L = [f"# nanochat report card — run `{d['run_id']}`", "",
         f"Profile `{d['profile']}`, depth {d['depth']}, created {d['created']}, report generated {d['generated']}.", "",
         "## Environment", "",
         f"- nanochat-cli {env['nanochat_cli']} (git {env['git_commit'] or 'n/a'}), Python {env['python']}, torch {env['torch']}",
         f"- {env['platform']}, {env['cpu_count']} CPUs, GPUs: {', '.join(env['gpus']) or 'none'}", ""]
    L += ["## Tokenizer", ""]
    te = d["tokenizer_eval"]
    if te and te.get("texts"):
        names = te.get("tokenizers", [])
        L += ["| text | " + " | ".join(f"{n} bytes/token" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
        for row in te["texts"]:
            L.append(f"| {row['text']} | " + " | ".join(_f(row['results'][n].get('bytes_per_token'), '{:.2f}')
                                                          for n in names) + " |")
    else:
        L.append("No tokenizer comparison recorded (`nanochat tokenizer eval`).")
    L += ["", "## Training phases", "", "| phase | status | steps | time (s) | tokens seen | final loss | val bpb |",
          "|---|---|---|---|---|---|---|"]
    for p, e in d["phases"].items():
        L.append(f"| {p} | {e['status']} | {e['step']} | {_f(e['train_seconds'], '{:.1f}')} | "
                 f"{_f(e['tokens_seen'], '{:,}')} | {_f(e['final_loss'])} | {_f(e['final_val_bpb'])} |")
    L.append(f"\nTotal training time: {d['total_train_seconds']:.1f} s.")
    if d["cost_estimate"]:
        c = d["cost_estimate"]
        L.append(f"Estimated cost: ${c['usd']:.2f} ({c['nodes']} node(s) × {c['hours']:.2f} h × "
                 f"${c['price_per_node_hour']:.0f}/node-hour, on-demand order of magnitude).")
    for key, title in (("loss", "Training loss"), ("bpb", "Validation bits per byte")):
        if key in d["plots"]:
            L += ["", f"![{title}]({d['plots'][key]})"]
    ev = d["evals"]
    L += ["", "## Base model", ""]
    base_rows = []
    for kind, label in (("core", "CORE"), ("mini", "mini-suite (not CORE)")):
        e = ev.get(f"{kind}/base")
        if e:
            score = e.get("core") if kind == "core" else e.get("mini_suite")
            base_rows.append(f"| {label} | {_f(score)} | step {e.get('step')} |")
    if ev.get("bpb/base"):
        base_rows.append(f"| bits per byte (val) | {_f(ev['bpb/base'].get('bpb'))} | step {ev['bpb/base'].get('step')} |")
    L += (["| metric | value | checkpoint |", "|---|---|---|", *base_rows] if base_rows
          else ["Not run (`nanochat eval core`, `nanochat eval bpb`)."])
    L += ["", "## Chat evals", ""]
    chat = {src: ev.get(f"chat/{src}") for src in ("mid", "sft") if ev.get(f"chat/{src}")}
    if chat:
        tasks = list(dict.fromkeys(t for e in chat.values() for t in e.get("tasks", {})))
        L += ["| task | " + " | ".join(chat) + " |", "|---" * (len(chat) + 1) + "|"]
        for t in tasks:
            L.append(f"| {t} | " + " | ".join(_f(e.get("tasks", {}).get(t, {}).get("accuracy")) for e in chat.values()) + " |")
        # score_name is "ChatCORE" for nanochat's six tasks, "mini-suite score" for the packaged ones
        names = list(dict.fromkeys(e.get("score_name") for e in chat.values() if e.get("score") is not None))
        for name in names:
            L.append(f"| **{name}** | " + " | ".join(_f(e.get("score")) if e.get("score_name") == name else "—"
                                                       for e in chat.values()) + " |")
    else:
        L.append("Not run (`nanochat eval chat -i sft`).")
    L += ["", "## Samples", ""]
    L += [f"- `{s}`" for s in d["samples"]] or ["No samples logged during training."]
    for src in ("mid", "sft"):
        for s in (ev.get(f"chat/{src}") or {}).get("samples", []):
            if isinstance(s, dict):
                prompt = " ".join(str(s.get("prompt", "")).split())[:120]
                reply = " ".join(str(s.get("completion", "")).split())[:200]
                L.append(f"- {src} chat eval — *{prompt}* → `{reply}`")
    return "\n".join(L) + "\n"
