"""Where task rows come from: HF datasets through `data.hub.load_split` (offline, from <home>/datasets),
and data shipped inside PyPI packages (chitchat-dataset, english-words, wonderwords) for the offline
profiles.

Packaged lists are read once per process and cached (the chitchat JSON is 40 MB: ~0.6 s to parse).
english-words ships a pickled *set*, so its words are sorted here: generated tasks pick words by index
and must see the same order on every machine. A missing package or dataset is a PreflightError that
names the fix; nothing here downloads.
"""

from __future__ import annotations

import functools
import importlib.resources as ir
import json
from pathlib import Path

from nanochat_cli.errors import PreflightError

REINSTALL = "reinstall nanochat-cli with its dependencies (`pip install nanochat-cli`)"


def load_rows(cfg, repo: str, name: str | None, split: str):
    """One HF dataset config/split, loaded for real from the local cache (data.hub.load_split)."""
    from nanochat_cli.data.hub import load_split

    return load_split(cfg, repo, name, split)


def _package_file(package: str, *parts: str):
    try:
        root = ir.files(package)
    except ModuleNotFoundError:
        raise PreflightError(f"the Python package {package!r} (packaged training data) is not installed",
                             REINSTALL) from None
    return root.joinpath(*parts)


@functools.lru_cache(maxsize=None)
def chitchat_conversations() -> tuple[tuple[str, ...], ...]:
    """chitchat-dataset: each conversation as its speaker turns (a turn's utterances joined by a space),
    in file order. 7,168 conversations; consecutive turns alternate speakers."""
    data = json.loads(_package_file("chitchat_dataset", "dataset.json").read_bytes())
    out = []
    for conv in data.values():
        turns = tuple(" ".join(u["text"].strip() for u in turn).strip() for turn in conv["messages"])
        out.append(tuple(t for t in turns if t))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def web2_words() -> tuple[str, ...]:
    """english-words web2 (public domain Webster's 1934), lower-case a–z only: 234,450 words, sorted."""
    try:
        from english_words import get_english_words_set
    except ImportError:
        raise PreflightError("the Python package 'english-words' (packaged word list) is not installed",
                             REINSTALL) from None
    return tuple(sorted(get_english_words_set(["web2"], alpha=True, lower=True)))


@functools.lru_cache(maxsize=None)
def wonderwords_list(kind: str) -> tuple[str, ...]:
    """wonderwords' common words: kind = nounlist (6,787), verblist, adjectivelist, profanitylist."""
    text = _package_file("wonderwords", "assets", f"{kind}.txt").read_text(encoding="utf-8")
    return tuple(w.strip() for w in text.splitlines() if w.strip())


def words_alpha(path: Path) -> tuple[str, ...]:
    """dwyl's words_alpha.txt as nanochat reads it (stripped lines, file order), fetched by `data fetch`."""
    path = Path(path)
    if not path.is_file():
        raise PreflightError(f"the SpellingBee word list {path} is missing", "run `nanochat data fetch mid` (or `sft`)")
    return tuple(w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip())
