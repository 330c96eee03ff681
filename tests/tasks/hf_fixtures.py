"""Tiny copies of the HF datasets mid/SFT use, in the Hub's own file layout (docs/explanation/hub-and-datasets.md):
parquet files under <root>/<repo>/ plus the README YAML that maps configs and splits, so real
`datasets.load_dataset(path=<root>/<repo>, name=..., split=...)` reads them as it reads the Hub."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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
dataset_info:
- config_name: all
  features:
  - name: question
    dtype: string
  - name: subject
    dtype: string
  - name: choices
    sequence: string
  - name: answer
    dtype:
      class_label:
        names:
          '0': A
          '1': B
          '2': C
          '3': D
---
"""

GSM8K_README = """---
configs:
- config_name: main
  data_files:
  - split: train
    path: main/train-*
  - split: test
    path: main/test-*
---
"""

ARC_README = """---
configs:
- config_name: ARC-Easy
  data_files:
  - split: train
    path: ARC-Easy/train-*
  - split: validation
    path: ARC-Easy/validation-*
  - split: test
    path: ARC-Easy/test-*
- config_name: ARC-Challenge
  data_files:
  - split: train
    path: ARC-Challenge/train-*
  - split: validation
    path: ARC-Challenge/validation-*
  - split: test
    path: ARC-Challenge/test-*
---
"""


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def mmlu_rows(n: int, subject: str = "college_biology") -> list[dict]:
    return [{"question": f"Question {i}: which is option {'ABCD'[i % 4]}?", "subject": subject,
             "choices": [f"opt{i}-{c}" for c in "abcd"], "answer": i % 4} for i in range(n)]


GSM8K_ANSWER = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72")


def gsm8k_rows(n: int) -> list[dict]:
    return [{"question": f"Natalia sold clips to 48 of her friends in April ({i}), and then she sold half as many "
                         "clips in May. How many clips did Natalia sell altogether in April and May?",
             "answer": GSM8K_ANSWER} for i in range(n)]


def arc_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        if i % 3 == 0:   # numeric labels, as ~4% of real rows
            labels, texts = ["1", "2", "3", "4"], ["one", "two", "three", "four"]
        elif i % 3 == 1:  # five choices
            labels, texts = list("ABCDE"), ["sun", "moon", "star", "comet", "planet"]
        else:
            labels, texts = list("ABC"), ["ice", "water", "steam"]
        rows.append({"id": f"Mercury_{i}", "question": f"ARC question {i}?",
                     "choices": {"text": texts, "label": labels}, "answerKey": labels[i % len(labels)]})
    return rows


def smoltalk_rows(n: int, offset: int = 0) -> list[dict]:
    rows = []
    for i in range(offset, offset + n):
        messages = [{"content": f"Hello {i}", "role": "user"}, {"content": f"Hi there {i}!", "role": "assistant"}]
        if i % 2:
            messages = [{"content": "You are kind.", "role": "system"}] + messages
        rows.append({"messages": messages, "source": "fixture"})
    return rows


def build(root: Path, *, mmlu_all: bool = True, gsm8k_test: bool = True) -> Path:
    """Write the fixture tree under `root`; `mmlu_all=False` / `gsm8k_test=False` leave those out."""
    mmlu = root / "cais/mmlu"
    readme = MMLU_README
    if mmlu_all:
        for split, n in (("test", 12), ("validation", 4), ("dev", 4), ("auxiliary_train", 8)):
            _write(mmlu / f"all/{split}-00000-of-00001.parquet", mmlu_rows(n))
    else:  # the config is gone from the files and from the card
        readme = readme.replace(readme[readme.index("- config_name: all\n  data_files"):
                                       readme.index("- config_name: auxiliary_train\n  data_files")], "")
        readme = readme[:readme.index("dataset_info:")] + "---\n"
    aux = [{"train": {"answer": r["answer"], "choices": r["choices"], "question": r["question"], "subject": ""}}
           for r in mmlu_rows(10)]
    _write(mmlu / "auxiliary_train/train-00000-of-00001.parquet", aux)
    (mmlu / "README.md").write_text(readme)

    gsm = root / "openai/gsm8k"
    _write(gsm / "main/train-00000-of-00001.parquet", gsm8k_rows(6))
    readme = GSM8K_README
    if gsm8k_test:
        _write(gsm / "main/test-00000-of-00001.parquet", gsm8k_rows(3))
    else:
        readme = readme.replace("  - split: test\n    path: main/test-*\n", "")
    (gsm / "README.md").write_text(readme)

    arc = root / "allenai/ai2_arc"
    for cfg in ("ARC-Easy", "ARC-Challenge"):
        for split in ("train", "validation", "test"):
            _write(arc / f"{cfg}/{split}-00000-of-00001.parquet", arc_rows(6))
    (arc / "README.md").write_text(ARC_README)

    smol = root / "HuggingFaceTB/smol-smoltalk"
    for k in range(4):
        _write(smol / f"data/train-0000{k}-of-00004.parquet", smoltalk_rows(5, offset=10 * k))
    _write(smol / "data/test-00000-of-00001.parquet", smoltalk_rows(4, offset=100))
    return root


def load(root: Path, repo: str, name: str | None, split: str):
    """Real `datasets` loading of one fixture config/split (keyword args, as data.hub does)."""
    import datasets

    return datasets.load_dataset(path=str(root / repo), name=name, split=split,
                                 cache_dir=str(root / ".hf-cache"))
