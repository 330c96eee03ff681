"""Generated and packaged tasks (no network): spelling, arithmetic, quiz, chitchat, and mixtures."""

from __future__ import annotations

import pytest

from nanochat_cli.tasks.arithmetic import Arithmetic
from nanochat_cli.tasks.chitchat import ChitChat
from nanochat_cli.tasks.quiz import Quiz
from nanochat_cli.tasks.sources import web2_words
from nanochat_cli.tasks.spelling import SimpleSpelling, SpellingBee
from nanochat_cli.tasks.task import TaskMixture, TaskSequence


def _calc(parts):
    """Every python part evaluates to the python_output that follows it (the calculator is right)."""
    for a, b in zip(parts, parts[1:]):
        if a["type"] == "python":
            assert b["type"] == "python_output"
            assert str(eval(a["text"], {"__builtins__": {}})).removesuffix(".0") == b["text"]  # noqa: S307


def test_spellingbee_counts_and_uses_python():
    words = web2_words()
    assert len(words) == 234_450 and list(words) == sorted(words)
    task = SpellingBee(words, size=50)
    for i in range(50):
        conv = task[i]
        parts = conv["messages"][1]["content"]
        _calc(parts)
        call = [p for p in parts if p["type"] == "python"][0]["text"]  # 'word'.count('l')
        word, letter = call.split("'")[1], call.split("'")[3]
        assert f"{word}:{','.join(word)}" in parts[0]["text"]
        assert parts[-1]["text"].endswith(f"#### {word.count(letter)}")
        assert task.evaluate(conv, f"#### {word.count(letter)}") == 1
    assert SpellingBee(words, 5)[3] == SpellingBee(words, 5)[3]
    assert SpellingBee(words, 5, split="test")[0] != task[0]


def test_simple_spelling():
    task = SimpleSpelling(web2_words(), size=10)
    conv = task[0]
    word = conv["messages"][0]["content"].removeprefix("Spell the word: ")
    assert conv["messages"][1]["content"] == word + ":" + ",".join(word)


def test_arithmetic_problems_are_correct_and_gradable():
    task = Arithmetic(200)
    for i in range(200):
        conv = task[i]
        parts = conv["messages"][1]["content"]
        _calc(parts)
        final = [p for p in parts if p["type"] == "python_output"][-1]["text"]
        assert parts[-1]["text"].endswith(f"#### {final}")
        assert task.evaluate(conv, f"The answer:\n#### {final}") == 1


def test_big_numbers_are_the_same_problems_with_bigger_numbers():
    """numbers="big" keeps each problem's kind, name and noun (same RNG calls) and only widens the ranges; the
    small problems stay exactly what mid/SFT trained on."""
    import re

    small, big = Arithmetic(300), Arithmetic(300, numbers="big")
    assert small[0]["messages"][0]["content"] == (  # as before numbers= existed
        "Mateo shares 180 trolleys equally among 10 friends. How many trolleys does each friend get?")
    largest = 0
    for i in range(300):
        s_q, b_q = small[i]["messages"][0]["content"], big[i]["messages"][0]["content"]
        assert re.sub(r"\d+", "N", s_q) == re.sub(r"\d+", "N", b_q)
        largest = max(largest, *map(int, re.findall(r"\d+", b_q)))
        parts = big[i]["messages"][1]["content"]
        final = [p for p in parts if p["type"] == "python_output"][-1]["text"]
        assert parts[-1]["text"].endswith(f"#### {final}") and big.evaluate(big[i], f"#### {final}") == 1
    assert 400 < largest <= 150 * 30  # a share total is b × c
    with pytest.raises(ValueError, match="numbers must be one of"):
        Arithmetic(3, numbers="huge")


def test_quiz_has_one_right_option():
    task = Quiz(300)
    sizes = set()
    for i in range(300):
        conv = task[i]
        lines = conv["messages"][0]["content"].splitlines()
        options = [l for l in lines if l.startswith("- ")]
        sizes.add(len(options))
        assert len(options) == len(conv["letters"]) == len({o.rsplit("=", 1)[0] for o in options})
        assert conv["messages"][1]["content"] in conv["letters"]
    assert sizes == {3, 4, 5}


def test_chitchat_turns_alternate_and_splits_are_disjoint():
    train, test = ChitChat("train"), ChitChat("test")
    assert len(train) > 3000 and 100 < len(test) < len(train) // 10
    for conv in (train[0], train[len(train) - 1], test[0]):
        roles = [m["role"] for m in conv["messages"]]
        assert roles[0] == "user" and roles[-1] == "assistant" and len(roles) % 2 == 0
    seen = {tuple(m["content"] for m in train[i]["messages"]) for i in range(len(train))}
    assert not any(tuple(m["content"] for m in test[i]["messages"]) in seen for i in range(len(test)))


def test_mixture_is_deterministic_and_weighted():
    a, b = Arithmetic(30), Quiz(20)
    m1, m2 = TaskMixture([a, b], weights=[2, 0.5]), TaskMixture([a, b], weights=[2, 0.5])
    assert len(m1) == 70 and m1.counts() == {"arithmetic": 60, "quiz": 10}
    assert [m1[i] for i in range(70)] == [m2[i] for i in range(70)]
    assert [m1[i] for i in range(10)] != [TaskMixture([a, b], [2, 0.5], seed=1)[i] for i in range(10)]
    quiz_rows = [m1[i] for i in range(70) if "letters" in m1[i]]
    assert all(r in [b[j] for j in range(10)] for r in quiz_rows)  # weight 0.5 = the first half
    seq = TaskSequence([b, a])
    assert len(seq) == 50 and seq[0] == b[0] and seq[20] == a[0]
    with pytest.raises(ValueError):
        TaskMixture([a], weights=[1, 2])


def test_hub_mixtures_need_only_what_data_fetch_fetches():
    """Every HF dataset split a hub mixture loads is in data.hub.REQUIRED of its phase, so
    `nanochat data fetch mid|sft` is enough; and the fetch lists nothing the phase does not use."""
    from nanochat_cli.data import hub

    from nanochat_cli.config import Config
    from nanochat_cli.tasks.mixtures import mixture_parts

    cfg = Config(mid={"mixture": "hub"}, sft={"mixture": "hub"})
    for phase in ("mid", "sft"):
        used = {p.dataset for split in ("train", "val") for p in mixture_parts(cfg, phase, split) if p.dataset}
        assert used == {tuple(d) for d in hub.REQUIRED[phase]}, phase
        assert "words" in hub.FILES[phase]


def test_skills_mixture_builds_weighted_toward_the_calculator_skills():
    """cpu-small's `skills` mixture: every part builds offline, most conversations are arithmetic and
    spelling (train split only), and validation is the packaged one."""
    from nanochat_cli.config import Config
    from nanochat_cli.tasks.mixtures import SKILLS, mixture_parts

    cfg = Config(mid={"mixture": "skills"}, sft={"mixture": "skills"})
    for phase in ("mid", "sft"):
        tasks = [p.build() for p in mixture_parts(cfg, phase, "train")]
        sizes = {t.name: len(t) for t in tasks}
        assert sizes == SKILLS[phase]
        assert all(getattr(t, "split", "train") == "train" for t in tasks)
        skill = sizes["arithmetic"] + sizes["spellingbee"] + sizes["simplespelling"]
        assert skill >= 0.7 * sum(sizes.values()), sizes
        val = [p.label for p in mixture_parts(cfg, phase, "val")]
        assert val == [p.label for p in mixture_parts(Config(mid={"mixture": "packaged"},
                                                             sft={"mixture": "packaged"}), phase, "val")]
