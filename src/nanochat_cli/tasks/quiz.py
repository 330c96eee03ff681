"""Generated multiple-choice questions with facts that can be computed (sums and products, the alphabet,
word lengths, first letters), rendered exactly like MMLU/ARC, for the offline profiles.

They teach the multiple-choice *format* (answer with one letter, choose among 3–5 labelled options,
sometimes labelled 1–5 as some ARC rows are) without any downloaded data; the facts are easy on
purpose. Example i comes from `random.Random(i)` (test: +10,000,000). Distractors are drawn until
distinct, so every question has exactly one right option.
"""

from __future__ import annotations

import random
import string

from nanochat_cli.tasks.choice import evaluate_letter, mc_conversation
from nanochat_cli.tasks.sources import wonderwords_list
from nanochat_cli.tasks.task import Conversation, Task, split_seed

ALPHABET = string.ascii_lowercase


def _options(rng: random.Random, right: str, draw, n: int) -> tuple[list[str], int]:
    opts = {right}
    while len(opts) < n:
        opts.add(draw())
    opts = sorted(opts - {right})
    rng.shuffle(opts)
    k = rng.randrange(n)
    opts.insert(k, right)
    return opts, k


class Quiz(Task):
    eval_type = "categorical"
    name = "quiz"

    def __init__(self, size: int, split: str = "train", **kwargs):
        super().__init__(**kwargs)
        split_seed(split, 0)
        self.size, self.split = size, split
        self.nouns = tuple(n for n in wonderwords_list("nounlist") if n.isalpha() and n.islower())
        self.by_letter = {c: [w for w in self.nouns if w[0] == c] for c in ALPHABET}

    def num_examples(self) -> int:
        return self.size

    def get_example(self, index: int) -> Conversation:
        rng = random.Random(split_seed(self.split, index))
        n = rng.choice((3, 4, 4, 4, 5))
        kind = rng.randrange(5)
        if kind == 0:
            a, b = rng.randint(1, 99), rng.randint(1, 99)
            question, right = f"What is {a} + {b}?", a + b
            opts, k = _options(rng, str(right), lambda: str(max(0, right + rng.choice((-10, -2, -1, 1, 2, 10)))), n)
        elif kind == 1:
            a, b = rng.randint(2, 12), rng.randint(2, 12)
            question, right = f"What is {a} times {b}?", a * b
            opts, k = _options(rng, str(right), lambda: str(rng.randint(2, 12) * rng.randint(2, 12)), n)
        elif kind == 2:
            i = rng.randrange(25)
            question = f"Which letter comes right after '{ALPHABET[i]}' in the alphabet?"
            opts, k = _options(rng, ALPHABET[i + 1], lambda: rng.choice(ALPHABET), n)
        elif kind == 3:
            word = rng.choice(self.nouns)
            question = f"How many letters are in the word '{word}'?"
            opts, k = _options(rng, str(len(word)), lambda: str(max(1, len(word) + rng.randint(-3, 3))), n)
        else:
            letter = rng.choice("abcdefghilmnoprstw")
            question = f"Which of these words starts with the letter '{letter}'?"
            other = "".join(c for c in ALPHABET if c != letter and self.by_letter[c])
            opts, k = _options(rng, rng.choice(self.by_letter[letter]),
                               lambda: rng.choice(self.by_letter[rng.choice(other)]), n)
        labels = [str(i + 1) for i in range(n)] if rng.random() < 0.05 else list("ABCDE"[:n])
        return mc_conversation(question, labels, opts, labels[k])

    def evaluate(self, conversation: Conversation, completion: str) -> int:
        return evaluate_letter(conversation, completion)
