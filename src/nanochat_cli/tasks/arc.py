"""ARC (`allenai/ai2_arc`, configs ARC-Easy and ARC-Challenge) as multiple choice with the row's own labels.

`choices` is a struct of two lists (`text`, `label`); labels are usually A–D but ~4% of rows use
`1`–`4`, and some rows have 3 or 5 choices, so nothing here assumes four letters: the conversation
carries its `letters` for the evaluator to clamp to.
"""

from __future__ import annotations

from typing import Any

from nanochat_cli.tasks.choice import evaluate_letter, mc_conversation
from nanochat_cli.tasks import sources
from nanochat_cli.tasks.task import Conversation, RowTask

REPO = "allenai/ai2_arc"
SUBSETS = ("ARC-Easy", "ARC-Challenge")


class ARC(RowTask):
    eval_type = "categorical"

    def __init__(self, rows, subset: str = "ARC-Easy", **kwargs):
        if subset not in SUBSETS:
            raise ValueError(f"ARC subset must be one of {SUBSETS}, not {subset!r}")
        self.subset = subset
        self.name = subset.lower()
        super().__init__(rows, **kwargs)

    @classmethod
    def from_hub(cls, cfg, subset: str, split: str, **kwargs) -> "ARC":
        return cls(sources.load_rows(cfg, REPO, subset, split), subset=subset, **kwargs)

    def row_to_conversation(self, row: dict[str, Any]) -> Conversation:
        choices = row["choices"]
        return mc_conversation(row["question"], list(choices["label"]), list(choices["text"]), row["answerKey"])

    def evaluate(self, conversation: Conversation, completion: str) -> int:
        return evaluate_letter(conversation, completion)
