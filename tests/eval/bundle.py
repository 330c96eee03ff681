"""A small CORE eval bundle in the real layout (core.yaml, eval_meta_data.csv, eval_data/<uri>.jsonl):
one task per scoring type, each with more rows than its few-shot K."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

CORE_YAML = """icl_tasks:
- label: arc_easy
  dataset_uri: world_knowledge/arc_easy.jsonl
  num_fewshot: [3]
  icl_task_type: multiple_choice
  continuation_delimiter: "\\nAnswer: "
- label: winograd
  dataset_uri: language_understanding/winograd_wsc.jsonl
  num_fewshot: [0]
  icl_task_type: schema
- label: lambada_openai
  dataset_uri: language_understanding/lambada_openai.jsonl
  num_fewshot: [2]
  icl_task_type: language_modeling
"""

META = [("arc_easy", "world knowledge", "multiple choice", 10, 2376, 25, "Yes", "ARC easy"),
        ("winograd", "language understanding", "schema", 0, 273, 50, "Yes", "Winograd"),
        ("lambada_openai", "language understanding", "language modeling", 0, 5153, 0, "No", "LAMBADA")]


def make_bundle(root: Path, rows: int = 12) -> Path:
    bundle = root / "eval_bundle"
    rng = random.Random(0)
    (bundle / "eval_data" / "world_knowledge").mkdir(parents=True)
    (bundle / "eval_data" / "language_understanding").mkdir(parents=True)
    (bundle / "core.yaml").write_text(CORE_YAML)
    with open(bundle / "eval_meta_data.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Eval Task", "Task Category", "Task Type", "#shots", "#datapoints", "Random baseline",
                    "Centered Metric?", "Description"])
        w.writerows(META)
    mc = [{"query": f"Question: what is {i} plus one?", "choices": [str(i + 1), str(i + 2), "xx", "zero"],
           "gold": rng.randrange(4)} for i in range(rows)]
    schema = [{"context_options": [f"The cat {i} sat", f"The dog {i} ran"], "continuation": "on the mat.",
               "gold": i % 2} for i in range(rows)]
    lm = [{"context": f"  Counting up: {i} {i + 1} {i + 2}  ", "continuation": str(i + 3)} for i in range(rows)]
    for rel, data in (("world_knowledge/arc_easy.jsonl", mc), ("language_understanding/winograd_wsc.jsonl", schema),
                      ("language_understanding/lambada_openai.jsonl", lm)):
        (bundle / "eval_data" / rel).write_text("".join(json.dumps(r) + "\n" for r in data))
    return bundle
