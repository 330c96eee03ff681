"""The base-data shards on disk: which are train and which is validation, and a text stream for tokenizer training.

Shards are `<home>/base_data/shard_{i:05d}.parquet` with a `text` column; the last one in sorted order is the
validation shard (nanochat's convention, so fineweb and the embedded corpus are handled alike). `iter_texts`
reads one row group at a time (~430 k chars for the embedded corpus, ~1,024 documents for fineweb), so memory is
one row group however many shards there are. It does not download or build shards: `nanochat data fetch base`
does (or tokenizer training, for the embedded corpus).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.paths import Paths


def shard_name(i: int) -> str:
    """The file name of shard `i` (fineweb's and the embedded corpus's alike)."""
    return f"shard_{i:05d}.parquet"


def shard_paths(cfg) -> list[Path]:
    directory = Paths.of(cfg).base_data
    return sorted(directory.glob("shard_*.parquet")) if directory.is_dir() else []


def list_shards(cfg) -> tuple[list[Path], Path]:
    """(train shards, validation shard). PreflightError naming `nanochat data fetch base` when there are none."""
    paths = shard_paths(cfg)
    if not paths:
        raise PreflightError(f"no base-data shards in {Paths.of(cfg).base_data}", "nanochat data fetch base")
    return paths[:-1], paths[-1]


def _open(path: Path):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # ArrowInvalid / OSError for truncated or non-parquet files
        raise UsageError(f"{path} is not a readable parquet file ({type(e).__name__}: {' '.join(str(e).split())[:120]})",
                         "delete it and run `nanochat data fetch base` again") from None
    if "text" not in pf.schema_arrow.names:
        raise UsageError(f"{path} has no `text` column (columns: {', '.join(pf.schema_arrow.names)})",
                         "delete it and run `nanochat data fetch base` again")
    return pf


def iter_texts(files: Sequence[Path], max_chars: int, doc_cap: int) -> Iterator[str]:
    """Documents from `files` in order, each cut to `doc_cap` characters, until `max_chars` have been yielded
    (the last document is cut to fit). A corrupt shard raises UsageError naming the file."""
    remaining = max_chars
    for path in files:
        pf = _open(path)
        for i in range(pf.num_row_groups):
            try:
                column = pf.read_row_group(i, columns=["text"]).column("text").to_pylist()
            except Exception as e:
                raise UsageError(f"{path} is damaged: row group {i} cannot be read ({type(e).__name__})",
                                 "delete it and run `nanochat data fetch base` again") from None
            for text in column:
                if not text:
                    continue
                text = text[:min(doc_cap, remaining)]
                remaining -= len(text)
                yield text
                if remaining <= 0:
                    return


def first_row_group_text(path: Path) -> str:
    """The first row group's documents joined by newlines (what `tokenizer eval` measures on)."""
    pf = _open(path)
    if pf.num_row_groups == 0:
        return ""
    try:
        return "\n".join(t for t in pf.read_row_group(0, columns=["text"]).column("text").to_pylist() if t)
    except Exception as e:
        raise UsageError(f"{path} is damaged: its first row group cannot be read ({type(e).__name__})",
                         "delete it and run `nanochat data fetch base` again") from None
