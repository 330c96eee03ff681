"""Generated arithmetic word problems solved with calculator calls, GSM8K-style, for the offline profiles.

Each problem is one or two steps of + − × ÷ over small whole numbers about a common noun from
wonderwords (6,787 nouns); each calculation is a `python` part plus its `python_output` (what the
engine's calculator returns), and the reply ends with `#### n`, so GSM8K's grader scores it.
Example i comes from `random.Random(seed + i)` (test split: +10,000,000): no storage, same data
everywhere. Plurals use three English rules and are sometimes wrong ("analysises"); harmless here.

`numbers="big"` draws the same problems with numbers up to 400 instead of 60 (the same RNG calls, so problem i
has the same kind, name and noun in both): copying three-digit numbers into the calculator call is what a small
model gets wrong, so it is the harder task RL learns on in cpu-small (docs/explanation/cpu-small-skills.md).
"""

from __future__ import annotations

import random

from nanochat_cli.tasks.gsm8k import evaluate_final_number
from nanochat_cli.tasks.sources import wonderwords_list
from nanochat_cli.tasks.task import Conversation, Task, split_seed

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kofi", "Lena",
         "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor", "Wen", "Yara", "Zoe")


def plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _calc(expr: str, value: int) -> list[dict[str, str]]:
    return [{"type": "python", "text": expr}, {"type": "python_output", "text": str(value)}]


# (a, b, c) ranges: a = first amount, b = second amount or per-box count, c = boxes/friends/packs.
NUMBER_RANGES = {"small": ((2, 60), (2, 40), (2, 12)), "big": ((2, 400), (2, 150), (2, 30))}
# The task names (`eval chat -a`, `rl.task`) and the numbers each draws.
TASK_NUMBERS = {"arithmetic": "small", "arithmetic-big": "big"}


class Arithmetic(Task):
    eval_type = "generative"
    name = "arithmetic"

    def __init__(self, size: int, split: str = "train", numbers: str = "small", **kwargs):
        super().__init__(**kwargs)
        split_seed(split, 0)
        if numbers not in NUMBER_RANGES:
            raise ValueError(f"numbers must be one of {', '.join(NUMBER_RANGES)}, not {numbers!r}")
        self.size, self.split, self.ranges = size, split, NUMBER_RANGES[numbers]
        self.nouns = tuple(n for n in wonderwords_list("nounlist") if n.isalpha())

    def num_examples(self) -> int:
        return self.size

    def get_example(self, index: int) -> Conversation:
        rng = random.Random(split_seed(self.split, index))
        name, things = rng.choice(NAMES), plural(rng.choice(self.nouns))
        kind = rng.randrange(5)
        a, b, c = (rng.randint(lo, hi) for lo, hi in self.ranges)
        if kind == 0:
            q = f"{name} has {a} {things} and gets {b} more. How many {things} does {name} have now?"
            parts = [{"type": "text", "text": f"{name} has {a} and gets {b} more: {a}+{b}="}, *_calc(f"{a}+{b}", a + b),
                     {"type": "text", "text": f"{a + b} {things}."}]
            answer = a + b
        elif kind == 1:
            a = a + b  # keep it non-negative
            q = f"{name} had {a} {things} and gave {b} of them away. How many {things} are left?"
            parts = [{"type": "text", "text": f"{a} minus the {b} given away: {a}-{b}="}, *_calc(f"{a}-{b}", a - b),
                     {"type": "text", "text": f"{a - b} {things} are left."}]
            answer = a - b
        elif kind == 2:
            q = f"There are {c} boxes with {b} {things} in each box. How many {things} are there in all?"
            parts = [{"type": "text", "text": f"{c} boxes of {b} each: {c}*{b}="}, *_calc(f"{c}*{b}", c * b),
                     {"type": "text", "text": f"{c * b} {things}."}]
            answer = c * b
        elif kind == 3:
            total = b * c
            q = f"{name} shares {total} {things} equally among {c} friends. How many {things} does each friend get?"
            parts = [{"type": "text", "text": f"{total} shared by {c}: {total}/{c}="}, *_calc(f"{total}/{c}", b),
                     {"type": "text", "text": f"{b} {things} each."}]
            answer = b
        else:
            q = (f"{name} buys {c} packs of {things} with {b} in each pack, and already had {a}. "
                 f"How many {things} does {name} have now?")
            parts = [{"type": "text", "text": f"The packs hold {c}*{b}="}, *_calc(f"{c}*{b}", c * b),
                     {"type": "text", "text": f"{c * b}. With the {a} from before: {c * b}+{a}="},
                     *_calc(f"{c * b}+{a}", c * b + a), {"type": "text", "text": f"{c * b + a} {things}."}]
            answer = c * b + a
        parts.append({"type": "text", "text": f"\n#### {answer}"})
        return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": parts}]}

    def evaluate(self, conversation: Conversation, completion: str) -> int:
        return evaluate_final_number(conversation, completion)
