"""The base-model "mini-suite": a small eval from packaged data, for the offline profiles.

It is NOT the CORE metric (other tasks, easier, no literature numbers): it exists so a laptop run without
the 162 MB DCLM bundle still gets numbers to compare runs by. The suite is written as a bundle in CORE's own
format (core.yaml, eval_data/*.jsonl, eval_meta_data.csv) into a temporary directory (~60 KB, ~50 ms) and
scored by `eval.core.evaluate_core`, so it runs the same code path. Three tasks, one per scoring type,
generated deterministically (seed 7): arithmetic multiple choice, in-context copying of wonderwords nouns
(language modelling), and a chitchat reply under its own opening line vs another conversation's (schema).
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

SUITE_NAME = "mini-suite"
ROWS = 200


def _arith_mc(rng):
    rows = []
    for _ in range(ROWS):
        a, b = rng.randint(2, 50), rng.randint(2, 50)
        right = a + b
        wrong = rng.sample([n for n in range(max(0, right - 10), right + 11) if n != right], 3)
        choices = [str(n) for n in [right, *wrong]]
        rng.shuffle(choices)
        rows.append({"query": f"Question: What is {a} plus {b}?", "choices": choices, "gold": choices.index(str(right))})
    return rows


def _copy_lm(rng):
    from nanochat_cli.tasks.sources import wonderwords_list

    nouns = [n for n in wonderwords_list("nounlist") if n.isalpha() and len(n) < 9]
    return [{"context": f"Say it twice: {' '.join(ws)}.", "continuation": " ".join(ws)}
            for ws in (rng.sample(nouns, 3) for _ in range(ROWS))]


def _chitchat_schema(rng):
    from nanochat_cli.tasks.sources import chitchat_conversations

    convs = [c for c in chitchat_conversations() if len(c) >= 2 and len(c[0]) < 200 and len(c[1]) < 200]
    picked = rng.sample(convs, ROWS + 1)
    rows = []
    for i in range(ROWS):
        opts = [f"A: {picked[i][0]}", f"A: {picked[i + 1][0]}"]
        gold = rng.randrange(2)
        if gold:
            opts.reverse()
        rows.append({"context_options": opts, "continuation": f"B: {picked[i][1]}", "gold": gold})
    return rows


# label, type, few-shot, delimiter, generator, random baseline (percent, as in eval_meta_data.csv)
TASKS = [
    ("mini_arithmetic_mc", "multiple_choice", 3, "\nAnswer: ", _arith_mc, 25.0),
    ("mini_copy_lm", "language_modeling", 3, " ", _copy_lm, 0.0),
    ("mini_chitchat_schema", "schema", 0, "\n", _chitchat_schema, 50.0),
]


def write_mini_bundle(directory: Path) -> Path:
    """Write the suite as a CORE-format bundle under `directory`; returns it."""
    import yaml

    directory = Path(directory)
    (directory / "eval_data" / "mini").mkdir(parents=True, exist_ok=True)
    spec = []
    meta = ["Eval Task,Task Category,Task Type,#shots,#datapoints,Random baseline,Centered Metric?,Description"]
    for label, kind, k, delim, make, baseline in TASKS:
        rows = make(random.Random(7))
        uri = f"mini/{label}.jsonl"
        (directory / "eval_data" / uri).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        spec.append({"label": label, "dataset_uri": uri, "num_fewshot": [k], "icl_task_type": kind,
                     "continuation_delimiter": delim})
        meta.append(f"{label},mini,{kind},{k},{len(rows)},{baseline},True,nanochat-cli mini-suite")
    (directory / "core.yaml").write_text(yaml.safe_dump({"icl_tasks": spec}), encoding="utf-8")
    (directory / "eval_meta_data.csv").write_text("\n".join(meta) + "\n", encoding="utf-8")
    return directory


def evaluate_mini_suite(model, tokenizer, device, max_per_task: int = -1, rank: int = 0, world_size: int = 1,
                        progress=None) -> dict:
    """Like evaluate_core, but the headline is `mini_suite` (there is no `core` key, on purpose)."""
    from nanochat_cli.eval.core import evaluate_core

    with tempfile.TemporaryDirectory(prefix="nanochat-mini-") as d:
        res = evaluate_core(model, tokenizer, write_mini_bundle(Path(d)), device, max_per_task, rank, world_size,
                            progress)
    res["metric"] = SUITE_NAME
    res["mini_suite"] = res.pop("core")
    return res
