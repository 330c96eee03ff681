"""What a task is: a sized, indexable set of conversations (+ a scoring rule for evals), and the two
ways of combining tasks: a shuffled `TaskMixture` (weights = passes over each task) and a `TaskSequence`.

A task is built from rows (a `datasets.Dataset` or a list of dicts), so it is testable without any
network; `from_hub` constructors live in each task module. Row-backed tasks shuffle their rows with
seed 42 once, as nanochat does (`Dataset.shuffle(seed=42)` equals `numpy default_rng(42).permutation`,
so a list of dicts gets the same order). The mixture keeps its (task, index) map in two numpy arrays
(9 bytes/row: 848K rows of nanochat's mid mixture = 7.6 MB instead of ~100 MB of Python tuples).
It does not tokenize: the loaders in `train/chat_loader.py` do.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

Conversation = dict[str, Any]

ANSWER_RE = re.compile(r"#### (-?[0-9.,]+)")

TEST_SEED_OFFSET = 10_000_000


def split_seed(split: str, index: int) -> int:
    """The RNG seed of generated problem `index` of `split`: train and test draw from disjoint seed ranges,
    so no held-out problem is ever a training problem."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, not {split!r}")
    return index if split == "train" else TEST_SEED_OFFSET + index


def extract_answer(text: str) -> str | None:
    """The number after `#### ` (commas removed), or None: GSM8K's (and SpellingBee's) grading key."""
    m = ANSWER_RE.search(text)
    return m.group(1).strip().replace(",", "") if m else None


class Task:
    """A view [start:stop:step] over `num_examples()` conversations."""

    eval_type: str | None = None  # "categorical" | "generative" for tasks that can be scored

    def __init__(self, start: int = 0, stop: int | None = None, step: int = 1):
        if start < 0 or (stop is not None and stop < start) or step < 1:
            raise ValueError(f"bad task slice [{start}:{stop}:{step}]")
        self.start, self.stop, self.step = start, stop, step

    def num_examples(self) -> int:
        raise NotImplementedError

    def get_example(self, index: int) -> Conversation:
        raise NotImplementedError

    def __len__(self) -> int:
        stop = self.num_examples() if self.stop is None else min(self.stop, self.num_examples())
        return max(0, -(-(stop - self.start) // self.step))

    def __getitem__(self, index: int) -> Conversation:
        if not 0 <= index < len(self):
            raise IndexError(f"{type(self).__name__} index {index} out of range (len {len(self)})")
        return self.get_example(self.start + index * self.step)

    def evaluate(self, conversation: Conversation, completion: str) -> int:
        raise NotImplementedError(f"{type(self).__name__} has no scoring rule")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)})"


def shuffled_rows(rows, seed: int = 42):
    """`rows` in nanochat's shuffled order: Dataset.shuffle(seed) or the same permutation of a list."""
    if hasattr(rows, "shuffle") and hasattr(rows, "features"):
        return rows.shuffle(seed=seed)
    import numpy as np

    rows = list(rows)
    return [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]


class RowTask(Task):
    """A task over dataset rows; subclasses turn one row into a conversation in `row_to_conversation`."""

    def __init__(self, rows, shuffle: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.rows = shuffled_rows(rows) if shuffle else rows

    def num_examples(self) -> int:
        return len(self.rows)

    def get_example(self, index: int) -> Conversation:
        return self.row_to_conversation(self.rows[index])

    def row_to_conversation(self, row: dict[str, Any]) -> Conversation:
        raise NotImplementedError


class TaskMixture(Task):
    """All conversations of several tasks in one deterministic shuffled order.

    `weights[i]` is how many passes over task i the mixture holds: 2 = every row twice (nanochat lists
    a task twice for that), 0.5 = its first half. The shuffle uses numpy's default_rng(seed)."""

    def __init__(self, tasks: Sequence[Task], weights: Sequence[float] | None = None, seed: int = 42, **kwargs):
        import numpy as np

        super().__init__(**kwargs)
        weights = [1.0] * len(tasks) if weights is None else list(weights)
        if len(weights) != len(tasks) or any(w < 0 for w in weights):
            raise ValueError("TaskMixture needs one non-negative weight per task")
        self.tasks, self.weights = list(tasks), weights
        task_ids, local_ids = [], []
        for t, (task, w) in enumerate(zip(self.tasks, weights)):
            n = len(task)
            count = int(round(w * n))
            task_ids.append(np.full(count, t, dtype=np.int8 if len(tasks) < 128 else np.int32))
            local_ids.append(np.arange(count, dtype=np.int64) % max(n, 1))
        tid = np.concatenate(task_ids) if task_ids else np.zeros(0, dtype=np.int8)
        lid = np.concatenate(local_ids) if local_ids else np.zeros(0, dtype=np.int64)
        order = np.random.default_rng(seed).permutation(len(tid))
        self._task_ids, self._local_ids = tid[order], lid[order]

    def num_examples(self) -> int:
        return len(self._task_ids)

    def get_example(self, index: int) -> Conversation:
        return self.tasks[int(self._task_ids[index])][int(self._local_ids[index])]

    def counts(self) -> dict[str, int]:
        """Rows per task name in the mixture (for the plan shown before training)."""
        out: dict[str, int] = {}
        for task, w in zip(self.tasks, self.weights):
            name = getattr(task, "name", type(task).__name__)
            out[name] = out.get(name, 0) + int(round(w * len(task)))
        return out


class TaskSequence(Task):
    """Tasks one after another, unshuffled (a curriculum)."""

    def __init__(self, tasks: Sequence[Task], **kwargs):
        super().__init__(**kwargs)
        self.tasks = list(tasks)

    def num_examples(self) -> int:
        return sum(len(t) for t in self.tasks)

    def get_example(self, index: int) -> Conversation:
        for task in self.tasks:
            if index < len(task):
                return task[index]
            index -= len(task)
        raise IndexError(index)
