"""A small CORE bundle in the real format (core.yaml, eval_data/<cat>/<task>.jsonl, eval_meta_data.csv):
one task per scoring type, each with more rows than its few-shot count."""

from __future__ import annotations

import json
from pathlib import Path

META_HEADER = "Eval Task,Task Category,Task Type,#shots,#datapoints,Random baseline,Centered Metric?,Description"


def write_bundle(root: Path, rows: int = 12) -> Path:
    b = root / "eval_bundle"
    (b / "eval_data" / "world_knowledge").mkdir(parents=True, exist_ok=True)
    (b / "eval_data" / "language_understanding").mkdir(parents=True, exist_ok=True)
    mc = [{"query": f"Question: what is {i} plus one?", "choices": [str(i + 1), str(i + 7), str(i + 3), str(i)],
           "gold": 0} for i in range(rows)]
    schema = [{"context_options": [f"The cat number {i} sat", f"The dog number {i} ran"],
               "continuation": "on the mat.", "gold": i % 2} for i in range(rows)]
    lm = [{"context": f"Count: {i} {i + 1} {i + 2}", "continuation": f"{i + 3}"} for i in range(rows)]
    files = {"world_knowledge/arc_easy.jsonl": mc, "language_understanding/winograd_wsc.jsonl": schema,
             "language_understanding/lambada_openai.jsonl": lm}
    for uri, data in files.items():
        (b / "eval_data" / uri).write_text("".join(json.dumps(r) + "\n" for r in data))
    (b / "core.yaml").write_text(
        "icl_tasks:\n"
        "- label: arc_easy\n  dataset_uri: world_knowledge/arc_easy.jsonl\n  num_fewshot: [3]\n"
        "  icl_task_type: multiple_choice\n  continuation_delimiter: \"\\nAnswer: \"\n"
        "- label: winograd\n  dataset_uri: language_understanding/winograd_wsc.jsonl\n  num_fewshot: [0]\n"
        "  icl_task_type: schema\n"
        "- label: lambada_openai\n  dataset_uri: language_understanding/lambada_openai.jsonl\n  num_fewshot: [2]\n"
        "  icl_task_type: language_modeling\n")
    (b / "eval_meta_data.csv").write_text("\n".join([
        META_HEADER,
        "arc_easy,world knowledge,multiple choice,10,2376,25,True,x",
        "winograd,language understanding,schema,0,273,50,True,x",
        "lambada_openai,language understanding,language modeling,0,5153,0,True,x"]) + "\n")
    return b
