"""MMLU (`cais/mmlu`) as 4-way multiple choice: `auxiliary_train` (99,842 rows) for midtraining, the
`all` config's test split (14,042 rows) for validation and chat eval.

The `auxiliary_train` config wraps every row in one struct column `train`; rows are unwrapped on read
(a dict lookup per row) rather than with a `Dataset.map`, which would write a second 47 MB Arrow copy
into the cache. Its `subject` is empty. In `all`, `answer` is a ClassLabel: rows hold the int 0–3.
"""

from __future__ import annotations

from typing import Any

from nanochat_cli.tasks.choice import evaluate_letter, mc_conversation
from nanochat_cli.tasks import sources
from nanochat_cli.tasks.task import Conversation, RowTask

REPO = "cais/mmlu"
LETTERS = ("A", "B", "C", "D")
SUBSETS = {"auxiliary_train": ("train",), "all": ("test", "validation", "dev", "auxiliary_train")}


class MMLU(RowTask):
    eval_type = "categorical"
    name = "mmlu"

    def __init__(self, rows, subset: str = "all", **kwargs):
        if subset not in SUBSETS:
            raise ValueError(f"MMLU subset must be one of {sorted(SUBSETS)}, not {subset!r}")
        self.subset = subset
        super().__init__(rows, **kwargs)

    @classmethod
    def from_hub(cls, cfg, subset: str, split: str, **kwargs) -> "MMLU":
        if split not in SUBSETS.get(subset, ()):
            raise ValueError(f"MMLU {subset} has no split {split!r} (it has {', '.join(SUBSETS.get(subset, ()))})")
        return cls(sources.load_rows(cfg, REPO, subset, split), subset=subset, **kwargs)

    def row_to_conversation(self, row: dict[str, Any]) -> Conversation:
        if "train" in row and isinstance(row["train"], dict):  # auxiliary_train's wrapper struct
            row = row["train"]
        choices = list(row["choices"])
        if len(choices) != 4:
            raise ValueError(f"MMLU rows have 4 choices, this one has {len(choices)}")
        return mc_conversation(row["question"], LETTERS, choices, LETTERS[int(row["answer"])],
                               subject=row.get("subject", ""))

    def evaluate(self, conversation: Conversation, completion: str) -> int:
        return evaluate_letter(conversation, completion)
