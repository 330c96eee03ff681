"""The "mini-suite": a small base-model eval built from packaged data, for the offline profiles.

It is NOT the CORE metric (different tasks, easier, no literature numbers): it exists so a laptop run
without the 162 MB DCLM bundle still gets comparable numbers. The suite is written as a bundle in CORE's
own format (core.yaml, eval_data/*.jsonl, eval_meta_data.csv) into a temporary directory and scored by
`eval.core.evaluate_bundle`, so it exercises the same code path. Three tasks, one per scoring type,
generated deterministically (seed 7): arithmetic multiple choice, in-context copying of wonderwords
nouns (language modelling), and chitchat replies vs a reply from another conversation (schema).
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
    rows = []
    for _ in range(ROWS):
        words = " ".join(rng.sample(nouns, 3))
        rows.append({"context": f"Say it twice: {words}.", "continuation": words})
    return rows


def _chitchat_schema(rng):
    from nanochat_cli.tasks.sources import chitchat_conversations

    convs = [c for c in chitchat_conversations() if len(c) >= 2 and len(c[0]) < 200 and len(c[1]) < 200]
    picked = rng.sample(convs, ROWS + 1)
    rows = []
    for i in range(ROWS):
        other = picked[i + 1][0]
        opts = [f"A: {picked[i][0]}", f"A: {other}"]
        gold = rng.randrange(2)
        if gold:
            opts.reverse()
        rows.append({"context_options": opts, "continuation": f"B: {picked[i][1]}", "gold": gold})
    return rows


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
    spec, meta = [], ["Eval Task,Task Category,Task Type,#shots,#datapoints,Random baseline,Centered Metric?,Description"]
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


def evaluate_mini_suite(model, tokenizer, max_per_task=-1, device="cpu", rank=0, world_size=1, progress=lambda m: None):
    from nanochat_cli.eval.core import evaluate_bundle

    with tempfile.TemporaryDirectory(prefix="nanochat-mini-") as d:
        res = evaluate_bundle(model, tokenizer, write_mini_bundle(Path(d)), max_per_task, device, rank, world_size,
                              progress)
    return {"suite": SUITE_NAME, "tasks": res["tasks"], "mini_suite": res["core"], "seconds": res["seconds"]}
