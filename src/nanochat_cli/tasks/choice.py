"""Multiple choice as chat: the question and lettered choices in the user turn, the letter as the reply.

The letter comes *after* its choice with no space (`- Paris=A`), so the prompt holds the exact token the
reply must be ("A", not " A"): small models bind the answer to that token far better (nanochat's
observation). Scoring is categorical: the evaluator clamps the model's reply to the allowed letters
(argmax over those tokens), so `evaluate` only compares letters. It does not pick letters for you:
ARC rows bring their own labels (sometimes `1`–`4`, sometimes 3 or 5 choices).
"""

from __future__ import annotations

from typing import Any, Sequence

from nanochat_cli.tasks.task import Conversation

INSTRUCTION = "Respond only with the letter of the correct answer."


def render_mc(question: str, letters: Sequence[str], choices: Sequence[str]) -> str:
    lines = [f"Multiple Choice question: {question}"]
    lines += [f"- {choice}={letter}" for letter, choice in zip(letters, choices)]
    return "\n".join(lines) + "\n\n" + INSTRUCTION


def mc_conversation(question: str, letters: Sequence[str], choices: Sequence[str], answer: str,
                    **extra: Any) -> Conversation:
    if len(letters) != len(choices):
        raise ValueError(f"{len(choices)} choices but {len(letters)} labels")
    if answer not in letters:
        raise ValueError(f"answer {answer!r} is not one of the labels {list(letters)}")
    return {"messages": [{"role": "user", "content": render_mc(question, letters, choices)},
                         {"role": "assistant", "content": answer}],
            "letters": tuple(letters), **extra}


def evaluate_letter(conversation: Conversation, completion: str) -> int:
    """1 if the (clamped) reply is the reference letter, else 0."""
    return int(completion.strip() == conversation["messages"][-1]["content"])
