"""SpellingBee (count a letter in a word: spell it out, count by hand, check with Python) and
SimpleSpelling (spell a word out), generated from a word list.

Example i is drawn with `random.Random(i)` (test split: 10,000,000 + i, past any train index), so a
task of any size costs no memory and every machine sees the same examples for the same word list in
the same order. The word list is the packaged english-words web2 list (234,450 words, offline) or
dwyl's words_alpha.txt (370K, nanochat's, from `nanochat data fetch`). The hand count is spelled
`3:r hit! count=1` with no space before the letter, because " r" and "r" are different tokens.
"""

from __future__ import annotations

import random
from typing import Sequence

from nanochat_cli.tasks.gsm8k import evaluate_final_number
from nanochat_cli.tasks.task import Conversation, Task, split_seed

LETTERS = "abcdefghijklmnopqrstuvwxyz"

# Our own phrasings (a few languages, as people really ask); {l} = letter, {w} = word.
QUESTIONS = (
    "How many {l} are in {w}", "How many {l} are in the word {w}", "Count the {l} in {w}",
    "How many times does {l} occur in {w}", "In {w}, how many {l} are there", "Number of {l} in {w}",
    "How often does the letter {l} appear in {w}", "Can you count how many {l} {w} has",
    "What is the count of letter {l} in the word {w}", "{w}: how many {l}", "Tell me how many {l}s are in {w}",
    "How many {l}'s does {w} contain", "Count occurrences of {l} in {w}", "I need the number of {l} in {w}",
    "¿Cuántas {l} tiene {w}?", "Combien de {l} y a-t-il dans {w}", "Wie viele {l} hat {w}",
    "{w}里有几个{l}", "{w}に{l}はいくつありますか",
)


class _WordTask(Task):
    eval_type = "generative"

    def __init__(self, words: Sequence[str], size: int, split: str = "train", **kwargs):
        super().__init__(**kwargs)
        if not words:
            raise ValueError("the word list is empty")
        split_seed(split, 0)
        self.words, self.size, self.split = tuple(words), size, split

    def num_examples(self) -> int:
        return self.size


class SpellingBee(_WordTask):
    name = "spellingbee"

    def get_example(self, index: int) -> Conversation:
        rng = random.Random(split_seed(self.split, index))
        word = rng.choice(self.words)
        letter = rng.choice(word) if rng.random() < 0.9 else rng.choice(LETTERS)  # 10%: often absent
        count = word.count(letter)
        question = rng.choice(QUESTIONS)
        if rng.random() < 0.3:
            question = question.lower()
        lq, wq = rng.choice(("", "'", '"')), rng.choice(("", "'", '"'))
        question = question.format(l=f"{lq}{letter}{lq}", w=f"{wq}{word}{wq}")
        if rng.random() < 0.5 and not question.endswith("?"):
            question += "?"
        lines = [f"We need to count the letter '{letter}' in the word '{word}'. First by hand.", "",
                 "Spelled out:", f"{word}:{','.join(word)}", "", f"Going through it for '{letter}':"]
        running = 0
        for i, ch in enumerate(word, 1):
            if ch == letter:
                running += 1
                lines.append(f"{i}:{ch} hit! count={running}")
            else:
                lines.append(f"{i}:{ch}")
        lines += ["", f"By hand: {running}."]
        parts = [{"type": "text", "text": "\n".join(lines)},
                 {"type": "text", "text": "\n\nChecking with Python:\n\n"},
                 {"type": "python", "text": f"'{word}'.count('{letter}')"},
                 {"type": "python_output", "text": str(count)},
                 {"type": "text", "text": f"\n\nPython says {count}.\n\nFinal answer:\n\n#### {count}"}]
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": parts}]}

    def evaluate(self, conversation: Conversation, completion: str) -> int:
        return evaluate_final_number(conversation, completion)


class SimpleSpelling(_WordTask):
    """Spell a word out. Uses its own shuffle of the list (Random(42)) so its words differ from SpellingBee's."""

    name = "simplespelling"

    def __init__(self, words: Sequence[str], size: int, split: str = "train", **kwargs):
        words = list(words)
        random.Random(42).shuffle(words)
        super().__init__(words, size, split, **kwargs)

    def get_example(self, index: int) -> Conversation:
        rng = random.Random(split_seed(self.split, index))
        word = rng.choice(self.words)
        return {"messages": [{"role": "user", "content": f"Spell the word: {word}"},
                             {"role": "assistant", "content": f"{word}:{','.join(word)}"}]}

    def evaluate(self, conversation: Conversation, completion: str) -> int:
        return int(completion.strip() == conversation["messages"][-1]["content"])
