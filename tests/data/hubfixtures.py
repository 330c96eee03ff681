"""Tiny dataset repos in the real schemas (docs/explanation/hub-and-datasets.md), plus plain files (shards, word list,
eval bundle), as {repo: {path: bytes}} / {url path: bytes} for FakeHub."""

from __future__ import annotations

import io
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq


def parquet_bytes(table: pa.Table, row_group_size: int | None = None, compression: str = "snappy") -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size, compression=compression)
    return buf.getvalue()


def shard_bytes(i: int, rows: int = 64) -> bytes:
    return parquet_bytes(pa.table({"text": [f"shard {i} document {j}. " * (1 + j % 5) for j in range(rows)]}),
                         row_group_size=16)


def _mmlu_rows(n: int, tag: str) -> pa.Table:
    return pa.table({"question": [f"{tag} question {i}?" for i in range(n)],
                     "subject": ["abstract_algebra"] * n,
                     "choices": [[f"a{i}", f"b{i}", f"c{i}", f"d{i}"] for i in range(n)],
                     "answer": [i % 4 for i in range(n)]})


MMLU_README = """---
configs:
- config_name: all
  data_files:
  - split: test
    path: all/test-*
  - split: validation
    path: all/validation-*
  - split: dev
    path: all/dev-*
  - split: auxiliary_train
    path: all/auxiliary_train-*
- config_name: auxiliary_train
  data_files:
  - split: train
    path: auxiliary_train/train-*
---
# fixture mmlu
"""

GSM8K_README = """---
configs:
- config_name: main
  data_files:
  - split: train
    path: main/train-*
  - split: test
    path: main/test-*
- config_name: socratic
  data_files:
  - split: train
    path: socratic/train-*
  - split: test
    path: socratic/test-*
---
# fixture gsm8k
"""

ARC_README = """---
configs:
- config_name: ARC-Challenge
  data_files:
  - split: train
    path: ARC-Challenge/train-*
  - split: test
    path: ARC-Challenge/test-*
  - split: validation
    path: ARC-Challenge/validation-*
- config_name: ARC-Easy
  data_files:
  - split: train
    path: ARC-Easy/train-*
  - split: test
    path: ARC-Easy/test-*
  - split: validation
    path: ARC-Easy/validation-*
---
# fixture arc
"""


def _gsm(n: int, tag: str) -> bytes:
    return parquet_bytes(pa.table({"question": [f"{tag}: what is {i} + 1?" for i in range(n)],
                                   "answer": [f"{i} + 1 = <<{i}+1={i + 1}>>{i + 1}\n#### {i + 1}" for i in range(n)]}))


def _arc(n: int, tag: str) -> bytes:
    return parquet_bytes(pa.table({"id": [f"{tag}-{i}" for i in range(n)],
                                   "question": [f"{tag} q{i}" for i in range(n)],
                                   "choices": [{"text": ["x", "y", "z"], "label": ["A", "B", "C"]} for _ in range(n)],
                                   "answerKey": ["A"] * n}), compression="none")  # a flipped byte stays silent


def _smol(n: int, tag: str) -> bytes:
    msgs = [[{"content": f"{tag} hi {i}", "role": "user"}, {"content": f"hello {i}", "role": "assistant"}]
            for i in range(n)]
    return parquet_bytes(pa.table({"messages": msgs, "source": ["fixture"] * n}))


def hub_repos() -> dict[str, dict[str, bytes]]:
    aux = pa.table({"train": [{"answer": i % 4, "choices": ["p", "q", "r", "s"], "question": f"aux {i}",
                               "subject": ""} for i in range(12)]})
    return {
        "cais/mmlu": {
            "README.md": MMLU_README.encode(),
            "all/test-00000-of-00001.parquet": parquet_bytes(_mmlu_rows(20, "test")),
            "all/validation-00000-of-00001.parquet": parquet_bytes(_mmlu_rows(6, "val")),
            "all/dev-00000-of-00001.parquet": parquet_bytes(_mmlu_rows(5, "dev")),
            "all/auxiliary_train-00000-of-00001.parquet": parquet_bytes(_mmlu_rows(12, "aux")),
            "auxiliary_train/train-00000-of-00001.parquet": parquet_bytes(aux),
        },
        "openai/gsm8k": {
            "README.md": GSM8K_README.encode(),
            "main/train-00000-of-00001.parquet": _gsm(15, "main train"),
            "main/test-00000-of-00001.parquet": _gsm(7, "main test"),
            "socratic/train-00000-of-00001.parquet": _gsm(9, "socratic train"),
            "socratic/test-00000-of-00001.parquet": _gsm(4, "socratic test"),
        },
        "HuggingFaceTB/smol-smoltalk": {
            "data/train-00000-of-00002.parquet": _smol(10, "a"),
            "data/train-00001-of-00002.parquet": _smol(8, "b"),
            "data/test-00000-of-00001.parquet": _smol(5, "t"),
        },
        "allenai/ai2_arc": {
            "README.md": ARC_README.encode(),
            **{f"ARC-{c}/{s}-00000-of-00001.parquet": _arc(n, f"{c}-{s}")
               for c in ("Easy", "Challenge") for s, n in (("train", 11), ("test", 6), ("validation", 3))},
        },
    }


CORE_YAML = """icl_tasks:
- label: copa
  dataset_uri: commonsense_reasoning/copa.jsonl
  num_fewshot: [0]
  icl_task_type: multiple_choice
"""


def eval_bundle_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("eval_bundle/core.yaml", CORE_YAML)
        z.writestr("eval_bundle/eval_meta_data.csv", "Eval Task,Random baseline\ncopa,50\n")
        z.writestr("eval_bundle/eval_data/commonsense_reasoning/copa.jsonl",
                   '{"query": "q", "choices": ["a", "b"], "gold": 0}\n' * 3)
    return buf.getvalue()


WORDS = b"\r\n".join(w.encode() for w in ["aardvark", "apple", "banana", "cherry", "zebra"] * 50)
