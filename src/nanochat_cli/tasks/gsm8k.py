"""GSM8K (`openai/gsm8k`, config `main`): grade-school word problems solved with calculator calls.

The reference solutions mark each calculation `<<48/2=24>>`; these become a `python` part (`48/2`,
learned) and a `python_output` part (`24`, forced by the engine at inference, so not learned), split
at the *last* `=`. Grading compares the number after `#### ` in the reply with the reference's
(commas dropped, compared as strings: "18" ≠ "18.0", as in the official grader).
"""

from __future__ import annotations

import re
from typing import Any

from nanochat_cli.tasks import sources
from nanochat_cli.tasks.task import Conversation, RowTask, extract_answer

REPO = "openai/gsm8k"
CALC_RE = re.compile(r"(<<[^>]+>>)")


def answer_to_parts(answer: str) -> list[dict[str, str]]:
    """A GSM8K answer string → assistant parts (text / python / python_output)."""
    parts = []
    for piece in CALC_RE.split(answer):
        if piece.startswith("<<") and piece.endswith(">>"):
            expr, _, result = piece[2:-2].rpartition("=")
            if not _:  # no "=": the whole thing is the expression, the result is empty
                expr, result = piece[2:-2], ""
            parts.append({"type": "python", "text": expr})
            parts.append({"type": "python_output", "text": result})
        elif piece:
            parts.append({"type": "text", "text": piece})
    return parts


def evaluate_final_number(conversation: Conversation, completion: str) -> int:
    """1 if the reply's `#### n` equals the reference's (read from the last text part), else 0."""
    content = conversation["messages"][-1]["content"]
    reference = content if isinstance(content, str) else [p for p in content if p["type"] == "text"][-1]["text"]
    ref = extract_answer(reference)
    return int(ref is not None and extract_answer(completion) == ref)


class GSM8K(RowTask):
    eval_type = "generative"
    name = "gsm8k"

    @classmethod
    def from_hub(cls, cfg, split: str, subset: str = "main", **kwargs) -> "GSM8K":
        return cls(sources.load_rows(cfg, REPO, subset, split), **kwargs)

    def row_to_conversation(self, row: dict[str, Any]) -> Conversation:
        return {"messages": [{"role": "user", "content": row["question"]},
                             {"role": "assistant", "content": answer_to_parts(row["answer"])}]}

    def evaluate(self, conversation: Conversation, completion: str) -> int:
        return evaluate_final_number(conversation, completion)
