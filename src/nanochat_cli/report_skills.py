"""The report card's skills section: what each model of the run (base, mid, SFT, RL) gets right on the chat
tasks, with problem counts; a few of its sampled answers with their calculator calls; and RL's held-out pass@1
curve (plotted beside report.md as rl.png).

It reads only what was recorded — the eval stage's `evals` in the manifest and `train rl`'s evaluations in
metrics.jsonl — and computes nothing. A base model is scored on multiple choice only (it has not learned where
an answer ends, so a generative task would only run to the token limit); its other cells are "—".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODELS = ("base", "mid", "sft", "rl")
SHOWN_CHARS = 700  # a spelling answer with its hand count and calculator call is ~600 characters


def skills(evals: dict, metrics: list[dict]) -> dict[str, Any]:
    """{"tasks": {model: {task: {accuracy, problems}}}, "scores", "skipped", "samples", "rl_curve", "rl_samples"}."""
    tasks, scores, skipped, samples = {}, {}, {}, []
    for model in MODELS:
        entry = evals.get("base_mini" if model == "base" else f"{model}_chat") or {}
        if "skipped" in entry:
            skipped[model] = entry["skipped"]
        if not isinstance(entry.get("tasks"), dict):
            continue
        tasks[model] = {name: {"accuracy": r.get("accuracy"), "problems": r.get("problems")}
                        for name, r in entry["tasks"].items()}
        if model != "base":
            scores[model] = (entry.get("score_name") or "score", entry.get("score"))
        samples += [{"model": model, **s} for s in entry.get("samples") or []]
    curve = [{"step": r.get("step"), **{k: v for k, v in r.items() if k.startswith("pass@")},
              "problems": r.get("eval_problems")}
             for r in metrics if r.get("phase") == "rl" and isinstance(r.get("pass@1"), (int, float))]
    evaluated = [r for r in metrics if r.get("phase") == "rl" and r.get("rl_samples")]
    rl_samples = []
    for label, r in (("start", evaluated[0]), ("end", evaluated[-1])) if evaluated else ():
        if label == "end" and len(evaluated) == 1:
            break
        rl_samples += [{"model": f"rl step {r.get('step')}", "task": "held-out", **s} for s in r["rl_samples"][:2]]
    return {"tasks": tasks, "scores": scores, "skipped": skipped, "samples": samples, "rl_curve": curve,
            "rl_samples": rl_samples}


def _cell(r: dict | None) -> str:
    if not r or not isinstance(r.get("accuracy"), (int, float)):
        return "—"
    n = r.get("problems")
    return f"{r['accuracy']:.4f}" + (f" ({n})" if isinstance(n, int) else "")


def _one_line(text, n: int) -> str:
    return str(text).replace("`", "'").replace("\n", " ⏎ ")[:n]


def markdown(data: dict[str, Any], plot: str | None) -> list[str]:
    """The section's markdown lines."""
    L = ["## Skills: chat evals of each model", ""]
    tasks = data["tasks"]
    if tasks:
        models = [m for m in MODELS if m in tasks]
        names = list(dict.fromkeys(n for m in models for n in tasks[m]))
        L += ["| task | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        L += [f"| {n} | " + " | ".join(_cell(tasks[m].get(n)) for m in models) + " |" for n in names]
        if data["scores"]:
            name = next(iter(data["scores"].values()))[0]
            L.append(f"| **{name}** | " + " | ".join(
                (f"{data['scores'][m][1]:.4f}" if isinstance(data["scores"].get(m, (0, None))[1], float) else "—")
                for m in models) + " |")
        L += ["", "Accuracy on held-out problems (problems in parentheses); greedy decoding, calculator on."
              + (" The base model is scored on multiple choice only." if "base" in tasks else "")]
    for m, why in data["skipped"].items():
        L.append(f"- {m}: skipped ({why})")
    if not tasks and not data["skipped"]:
        L.append("No chat evals recorded (the speedrun's eval stage or `nanochat eval chat` records them).")
    L.append("")

    curve = data["rl_curve"]
    if curve:
        keys = sorted({k for r in curve for k in r if k.startswith("pass@")}, key=lambda k: int(k[5:]))
        L += ["### RL: pass@k on held-out problems during training", "",
              "| step | " + " | ".join(keys) + " | problems |", "|---|" + "---|" * (len(keys) + 1)]
        L += [f"| {r['step']} | " + " | ".join(f"{r.get(k, 0):.4f}" for k in keys) + f" | {r.get('problems')} |"
              for r in curve]
        first, last = curve[0], curve[-1]
        if len(curve) > 1:
            L += ["", f"pass@1 {first['pass@1']:.4f} at step {first['step']} → {last['pass@1']:.4f} at step "
                      f"{last['step']} ({100 * (last['pass@1'] - first['pass@1']):+.1f} points); sampled at the "
                      "training temperature, unbiased estimator over each problem's samples."]
        if plot:
            L += ["", f"![rl pass@k]({plot})"]
        L.append("")

    shown = data["samples"] + data["rl_samples"]
    if shown:
        L += ["### Sampled answers (calculator calls between <|python_start|> and <|python_end|>, results forced "
              "between <|output_start|> and <|output_end|>)", ""]
        for s in shown:
            mark = "✓" if s.get("correct") else "✗"
            what = f"{s['model']}, {s['task']}" if s.get("task") else s["model"]
            L += [f"- {mark} {what}: **{_one_line(s.get('prompt'), 160)}**", "", "  ```",
                  *[f"  {line}" for line in str(s.get("completion", ""))[:SHOWN_CHARS].splitlines()], "  ```", ""]
    return L


def plot_rl(curve: list[dict], run_dir: Path) -> str | None:
    """rl.png: pass@1 (and pass@k) against the RL step; returns its file name, or None without a curve."""
    if len(curve) < 1:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in curve for k in r if k.startswith("pass@")}, key=lambda k: int(k[5:]))
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for k in keys:
        pts = [(r["step"], r[k]) for r in curve if k in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=k)
    ax.set_xlabel("RL step")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, run_dir / "rl.png")
    return "rl.png"


def save_png(fig, path: Path) -> None:
    """Lay out `fig`, write it as a PNG atomically (a reader never sees half an image) and free it."""
    import io

    import matplotlib.pyplot as plt

    from nanochat_cli.paths import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
