"""The report card of a run: `<home>/runs/<id>/report.md` plus loss/bpb PNG plots beside it.

It only reads what the run already recorded — manifest.json (phases, evals), metrics.jsonl (curves,
samples), speedrun.json (stage timings), tokenizer_eval.json — and the environment; it loads no model
and computes no metric, so it takes well under a second (matplotlib Agg ~0.3 s per plot). Sections whose
source is missing say so instead of disappearing. `build_report` gives the same data as a dict (`--json`).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from nanochat_cli.errors import UsageError
from nanochat_cli.hardware import GPU_DOLLARS_PER_HOUR, profile_gpu, usable_cpus
from nanochat_cli.paths import Paths, atomic_write_text

PHASE_ORDER = ("base", "mid", "sft")  # the language-model phases: loss/bpb curves and tokens seen


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    out = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash
    return out


def resolve_run(cfg, run_id: str | None) -> str:
    """`run_id` (a run name, never a path), or the most recently updated run; UsageError when there is none."""
    from nanochat_cli.runs import list_runs, load_named_run

    paths = Paths.of(cfg)
    if run_id:
        return load_named_run(paths, run_id).run_id
    runs = list_runs(paths)
    if not runs:
        raise UsageError(f"no runs under {paths.runs}", "train something first: `nanochat speedrun`")
    return runs[-1].run_id


def environment() -> dict[str, Any]:

    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": usable_cpus()}
    try:
        import torch

        env["torch"] = torch.__version__
        if torch.cuda.is_available():
            env["gpu"] = f"{torch.cuda.device_count()}× {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        env["nanochat_cli"] = version("nanochat-cli")
    except Exception:  # not installed (running from a checkout)
        pass
    src = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           timeout=5)
        if r.returncode == 0:
            env["git_commit"] = r.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain"], capture_output=True, text=True,
                                   timeout=5)
            env["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return env


def _run_config(run_dir: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _tokens_seen(phases: dict, run_cfg: dict) -> dict[str, int]:
    """Optimizer steps × tokens per step, per phase (SFT rows are padded, so its count is an upper bound)."""
    train = run_cfg.get("train", {})
    out = {}
    for phase in PHASE_ORDER:
        step = (phases.get(phase) or {}).get("step")
        if not step:
            continue
        per_step = (run_cfg.get(phase, {}) or {}).get("total_batch_size") or train.get("total_batch_size")
        if phase == "sft":
            per_step = (run_cfg.get("sft", {}).get("examples_per_step") or 0) * run_cfg.get("model", {}).get("seq_len", 0)
        if per_step:
            out[phase] = int(step) * int(per_step)
    return out


def _seconds(entry: dict) -> float | None:
    if entry.get("train_seconds") is not None:
        return entry["train_seconds"]
    a, b = entry.get("started"), entry.get("finished")
    if a and b:
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        return time.mktime(time.strptime(b, fmt)) - time.mktime(time.strptime(a, fmt))
    return None


def _tokenizer_eval(cfg, run_dir: Path, phases: dict) -> dict | None:
    """The run's own tokenizer comparison (speedrun), else the one a standalone `nanochat tokenizer eval`
    saved with the tokenizer version the run's checkpoints name in their meta.json (a version fingerprint, or
    the ranks sha256 of checkpoints from before versioning: store.eval_for finds either), so a tokenizer
    trained later never lends its figures to an older run."""
    from nanochat_cli.tokenizer.store import eval_for

    own = _read_json(run_dir / "tokenizer_eval.json")
    if own is not None:
        return own
    for entry in phases.values():
        ckpt = entry.get("checkpoint") if isinstance(entry, dict) else None
        meta = _read_json(Path(ckpt) / "meta.json") if ckpt else None
        fingerprint = (meta.get("tokenizer") or {}).get("fingerprint") if isinstance(meta, dict) else None
        saved = eval_for(Paths.of(cfg), fingerprint) if isinstance(fingerprint, str) else None
        if saved is not None:
            return saved
    return None


def build_report(cfg, run_id: str | None = None) -> dict[str, Any]:
    """Everything the report shows, as JSON-able data."""
    from nanochat_cli.runs import Manifest

    run_id = resolve_run(cfg, run_id)
    run_dir = Paths.of(cfg).run_dir(run_id)
    manifest = Manifest.load(run_dir).data  # validated: a damaged manifest is one line, exit 3
    speedrun = _read_json(run_dir / "speedrun.json")
    if not isinstance(speedrun, dict) or not isinstance(speedrun.get("stages"), dict):
        speedrun = None
    run_cfg = _run_config(run_dir)
    phases = manifest.get("phases", {})
    timings = {}
    for phase, entry in phases.items():
        timings[phase] = {"status": entry.get("status"), "step": entry.get("step"), "seconds": _seconds(entry)}
    if speedrun:
        for stage, entry in speedrun.get("stages", {}).items():
            timings.setdefault(stage, {"status": entry.get("status")})
            if entry.get("seconds") is not None:
                timings[stage]["stage_seconds"] = entry["seconds"]
    order = ("data", "tokenizer", *PHASE_ORDER, "rl", "eval", "report")
    timings = dict(sorted(timings.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    total = sum(t.get("stage_seconds", t.get("seconds")) or 0 for t in timings.values())
    profile = manifest.get("profile") or run_cfg.get("profile") or cfg.profile
    gpu = profile_gpu(profile, run_cfg.get("train", {}).get("device"))
    world = (run_cfg.get("dist", {}).get("nproc", 1) or 1) * (run_cfg.get("dist", {}).get("nnodes", 1) or 1)
    cost = None
    if gpu:
        cost = {"gpu": gpu, "gpus": world, "dollars_per_gpu_hour": GPU_DOLLARS_PER_HOUR[gpu],
                "dollars": total / 3600 * GPU_DOLLARS_PER_HOUR[gpu] * world}
    metrics = _metrics(run_dir)
    samples = [{"phase": r.get("phase"), "step": r.get("step"), "samples": r["samples"]}
               for r in metrics if r.get("samples")][-3:]
    evals = manifest.get("evals", {})
    from nanochat_cli.report_skills import skills

    return {"run_id": run_id, "run_dir": str(run_dir), "profile": profile, "depth": manifest.get("depth"),
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "environment": environment(),
            "tokenizer": _tokenizer_eval(cfg, run_dir, phases), "phases": timings,
            "total_seconds": total, "tokens_seen": _tokens_seen(phases, run_cfg), "cost": cost, "evals": evals,
            "samples": samples, "curves": _curves(metrics), "skills": skills(evals, metrics)}


def _curves(metrics: list[dict]) -> dict[str, dict[str, list]]:
    """{"loss"|"val_bpb": {phase: [[step, value], ...]}} from the training phases' records."""
    out: dict[str, dict[str, list]] = {"loss": {}, "val_bpb": {}}
    for r in metrics:
        phase = r.get("phase")
        if phase not in PHASE_ORDER:
            continue
        for key in out:
            v = r.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[key].setdefault(phase, []).append([r.get("step"), v])
    return out


def plot_curves(curves: dict, run_dir: Path) -> dict[str, str]:
    """Write loss.png and bpb.png (matplotlib, Agg backend) for curves with data; returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nanochat_cli.report_skills import save_png

    written = {}
    for key, fname, ylabel in (("loss", "loss.png", "train loss"), ("val_bpb", "bpb.png", "validation bits per byte")):
        series = curves.get(key) or {}
        if not any(series.values()):
            continue
        fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
        offset = 0
        for phase in PHASE_ORDER:  # phases one after another on one step axis
            pts = series.get(phase)
            if not pts:
                continue
            xs = [offset + p[0] for p in pts]
            ax.plot(xs, [p[1] for p in pts], marker="o" if len(pts) < 20 else None, label=phase)
            offset = max(xs)
        ax.set_xlabel("step (phases in sequence)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        save_png(fig, run_dir / fname)
        written[key] = fname
    return written


def _f(v, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _one_line(text, n: int) -> str:
    return str(text).replace("`", "'").replace("\n", " ⏎ ")[:n]


def _hms(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.2f} h"


def render_markdown(data: dict, plots: dict[str, str]) -> str:
    L: list[str] = [f"# nanochat report card: {data['run_id']}", "",
                    f"Profile `{data['profile']}`, depth {data['depth']}; generated {data['generated']}.", ""]
    L += ["## Environment", ""] + [f"- {k}: {v}" for k, v in data["environment"].items()] + [""]

    L += ["## Tokenizer", ""]
    tok = data.get("tokenizer")
    if not tok:
        L += ["No tokenizer evaluation recorded (the speedrun's tokenizer stage writes one; so does `nanochat tokenizer eval`).", ""]
    elif isinstance(tok, dict) and isinstance(tok.get("texts"), list) and tok.get("tokenizers"):
        names = list(tok["tokenizers"])
        sizes = tok.get("vocab_sizes") or {}
        L += ["UTF-8 bytes per token (higher = better compression):", "",
              "| text | bytes | " + " | ".join(f"{n} ({sizes.get(n, '?')})" for n in names) + " |",
              "|---|---|" + "---|" * len(names)]
        for t in tok["texts"]:
            res = t.get("results") or {}
            L.append(f"| {t.get('text')} | {t.get('bytes', '—')} | "
                     + " | ".join(_f((res.get(n) or {}).get("bytes_per_token"), 3) for n in names) + " |")
        L += [f"- note: {n}" for n in tok.get("notes") or []] + [""]
    else:
        L += ["```json", json.dumps(tok, indent=2, sort_keys=True)[:6000], "```", ""]

    L += ["## Timings and tokens", "", "| phase | status | step | seconds | tokens seen |", "|---|---|---|---|---|"]
    for phase, t in data["phases"].items():
        L.append(f"| {phase} | {t.get('status') or '—'} | {_f(t.get('step'))} | "
                 f"{_hms(t.get('stage_seconds', t.get('seconds')))} | {data['tokens_seen'].get(phase, '—')} |")
    L += ["", f"Total wall time: {_hms(data['total_seconds'])}."]
    cost = data.get("cost")
    if cost:
        L.append(f"Estimated cost: ${cost['dollars']:,.2f} ({cost['gpus']}× {cost['gpu'].upper()} at "
                 f"${cost['dollars_per_gpu_hour']:.2f}/GPU-hour).")
    L.append("")

    ev = data.get("evals") or {}
    L += ["## Base model", ""]
    if "base_bpb" in ev:
        L.append(f"- validation bits per byte: {_f(ev['base_bpb']['bpb'])} (step {ev['base_bpb'].get('step')})")
    core = ev.get("base_core")
    if core:
        L += [f"- **CORE: {_f(core['core'])}** (GPT-2 124M: 0.1139; {core.get('max_per_task')} rows per task max)", "",
              "| task | type | shots | rows | accuracy | centered |", "|---|---|---|---|---|---|"]
        L += [f"| {k} | {r['type']} | {r['shots']} | {r['rows']} | {_f(r['accuracy'])} | {_f(r['centered'])} |"
              for k, r in core["tasks"].items()]
    elif ev.get("base_mini"):
        m = ev["base_mini"]
        L.append(f"- {m.get('score_name', 'mini-suite score')} (not CORE): {_f(m['score'])}; {m.get('note', '')}")
        L += [f"  - {k}: accuracy {_f(r.get('accuracy'))} ({r.get('problems')} problems)"
              for k, r in (m.get("tasks") or {}).items()]
    if not ev:
        L.append("No evaluations recorded yet: run the speedrun's eval stage or `nanochat eval ...`.")
    L.append("")

    from nanochat_cli.report_skills import markdown as skills_markdown

    L += skills_markdown(data["skills"], plots.get("rl"))

    curves = {k: fname for k, fname in plots.items() if k != "rl"}
    if curves:
        L += ["## Curves", ""]
        L += [f"![{k}]({fname})" for k, fname in curves.items()] + [""]

    L += ["## Sample generations during training", ""]
    if not data["samples"]:
        L.append("None recorded (train.sample_every = 0).")
    for s in data["samples"]:
        L.append(f"- {s['phase']} step {s['step']}:")
        L += [f"  - `{_one_line(x, 200)}`" for x in s["samples"]]
    return "\n".join(L) + "\n"


def report_text(cfg, run_id: str | None = None) -> str:
    """The markdown card without writing anything (no plots: they exist only as files beside report.md)."""
    return render_markdown(build_report(cfg, run_id), {})


def write_report(cfg, run_id: str | None = None) -> Path:
    """Write `<run>/report.md` (+ loss.png, bpb.png); returns the markdown's path."""
    from nanochat_cli.paths import check_writable_dir

    data = build_report(cfg, run_id)
    run_dir = Path(data["run_dir"])
    # Before the plots, so a read-only run (a colleague's run on a shared file system) is one line naming the
    # way to read it anyway, not an OSError from the first PNG.
    check_writable_dir(run_dir, "the run directory", "`nanochat report --stdout` prints the card without "
                       "saving it (or --json for its data)")
    from nanochat_cli.report_skills import plot_rl

    plots = plot_curves(data["curves"], run_dir)
    rl_plot = plot_rl(data["skills"]["rl_curve"], run_dir)
    if rl_plot:
        plots["rl"] = rl_plot
    path = run_dir / "report.md"
    atomic_write_text(path, render_markdown(data, plots))
    return path
