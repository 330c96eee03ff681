"""A home as the first release (main@8361d5a) left it after `train base --run first` then `train base --run
second` on the same depth: second moved first's checkpoints aside to `checkpoints/base/d2.before-second/`, and
first's manifest still names `checkpoints/base/d2/…`, which now holds second's. Checkpoints are format 1
(meta.json without its own sha256). Built from those format facts (checked against a home that release made),
not by running the old code."""

from __future__ import annotations

import json
from pathlib import Path

LEGACY_STEPS = (2, 4)


def _tiny_checkpoint(directory: Path, run: str, step: int, seed: int) -> None:
    import torch

    from nanochat_cli import checkpoint as ck
    from tests.tiny import byte_gpt

    model, _ = byte_gpt(seq_len=32, seed=seed, n_layer=2, n_embd=64, n_head=2)
    cfg = model.config
    opt = torch.optim.AdamW(model.parameters())
    meta = {"phase": "base", "run_id": run, "num_iterations": LEGACY_STEPS[-1], "metrics": {"loss": 3.0},
            "model_config": {**cfg.__dict__}, "tokenizer": {"kind": "byte", "vocab_size": cfg.vocab_size,
                                                            "fingerprint": None},
            "loader": [{"file": 0, "row_group": 0, "pos": step}], "rng": [json.loads(json.dumps(ck.rng_state()))],
            "train_seconds": 0.1, "saved": "2026-11-20T10:00:00Z"}
    path = ck.save_checkpoint(directory, step, model.state_dict(), [opt.state_dict()], meta)
    written = json.loads((path / "meta.json").read_text())
    written.pop("meta_sha256")
    written["format_version"] = 1
    (path / "meta.json").write_text(json.dumps(written, indent=1, sort_keys=True))


def make_legacy_home(home: Path) -> dict[str, Path]:
    """The first layout with runs `first` and `second`; returns {run: its legacy checkpoints directory}."""
    dirs = {"first": home / "checkpoints" / "base" / "d2.before-second", "second": home / "checkpoints" / "base" / "d2"}
    for seed, (run, directory) in enumerate(dirs.items()):
        for step in LEGACY_STEPS:
            _tiny_checkpoint(directory, run, step, seed)
        run_dir = home / "runs" / run
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.toml").write_text(f'home = "{home}"\nprofile = "cpu-tiny"\n\n[model]\ndepth = 2\n')
        (run_dir / "metrics.jsonl").write_text(json.dumps({"phase": "base", "step": 4, "loss": 3.0}) + "\n")
        legacy = home / "checkpoints" / "base" / "d2"  # what both manifests name: the shared directory
        (run_dir / "manifest.json").write_text(json.dumps({
            "run_id": run, "created": f"2026-11-20T10:0{seed}:00Z", "updated": f"2026-11-20T10:0{seed}:30Z",
            "profile": "cpu-tiny", "depth": 2,
            "phases": {"base": {"status": "done", "step": 4, "num_iterations": 4, "checkpoint_dir": str(legacy),
                                "checkpoint": str(legacy / "step_000004"), "metrics": {"loss": 3.0}}}}, indent=2))
    return dirs
