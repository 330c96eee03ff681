"""TokenLoader: parquet shards -> tokens -> (B, T) input/target batches for pretraining, resumable exactly.

Streams one row group at a time (memory is constant in the number of shards: one row group of text plus a
few tokenized chunks in a bounded queue), tokenizes in a background thread with `encode_batch` (tiktoken
releases the GIL, so this overlaps the training step), puts BOS before every document and packs documents end
to end: a batch is B*T+1 consecutive tokens, inputs are the first B*T and targets the last B*T; the final token
is kept as the next batch's first input, so no token is dropped (nanochat's packing before its 2026 BOS-aligned
cropper, which drops ~35% of tokens at T=2048; the cost here is attention across document boundaries).
DDP: row i of every row group belongs to rank i % world_size. Every rank decodes every row group (zstd, ~0.3 s
per 100 MB shard, <1% of the time a shard lasts on 8 GPUs) but converts and tokenizes only its own rows, and no
rank starves when a shard has fewer row groups than there are ranks (nanochat shards whole row groups, so its
validation shard must have ≥ world_size row groups).
`state_dict()` is the position of the first token not yet handed out: (epoch, file, row group, row, token offset
in that document), so a restored loader re-tokenizes from there and yields exactly the batches an uninterrupted
one would. It does not shuffle (fineweb-edu-100b-shuffle is pre-shuffled) and does not move tensors to a device.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nanochat_cli.errors import NanochatError, UsageError

STATE_VERSION = 1


@dataclass
class _Chunk:
    """Tokens of consecutive documents of one row group, starting at document `row`."""

    epoch: int
    file: int
    row_group: int
    row: int  # row index in the row group; the chunk's documents are rows row, row+world, row+2·world, …
    tokens: np.ndarray  # flat int64, BOS + ids of each document
    ends: np.ndarray  # cumulative end offset of each document in `tokens`


class _End:
    pass


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class _Stopped(Exception):
    pass


class TokenLoader:
    """Iterator of `(inputs, targets)` int64 tensors of shape (batch_size, seq_len).

    `loop=True` (training) cycles over the files forever, counting epochs; `loop=False` (evaluation) stops
    after one pass and drops the last partial batch.
    """

    def __init__(self, files: Sequence[str | Path], tokenizer: Any, batch_size: int, seq_len: int,
                 rank: int = 0, world_size: int = 1, *, loop: bool = True, text_column: str = "text",
                 tokenize_batch: int = 128, prefetch: int = 16):
        if not files:
            raise UsageError("TokenLoader got no parquet files", "run `nanochat data fetch base` first")
        if batch_size < 1 or seq_len < 1:
            raise UsageError(f"batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise UsageError(f"rank {rank} is not in [0, world_size={world_size})")
        self.files = [str(f) for f in files]
        self.tokenizer = tokenizer
        self.batch_size, self.seq_len = batch_size, seq_len
        self.rank, self.world_size = rank, world_size
        self.loop = loop
        self.text_column = text_column
        self.tokenize_batch = max(1, tokenize_batch)
        self.prefetch = max(1, prefetch)
        self._bos = tokenizer.bos_id
        self._start = {"epoch": 0, "file": 0, "row_group": 0, "row": 0, "offset": 0}
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue | None = None
        self._stop: threading.Event | None = None
        self._chunks: deque[_Chunk] = deque()
        self._head = 0  # offset of the first unconsumed token in self._chunks[0]
        self._skip = 0  # tokens to drop from the first chunk after a (re)start
        self._done = False

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> "TokenLoader":
        return self

    def __next__(self):
        import torch

        if self._done:
            raise StopIteration
        if self._thread is None:
            self._launch()
        need = self.batch_size * self.seq_len + 1
        buf = self._gather(need)
        if buf is None:
            self._done = True
            self._shutdown()
            raise StopIteration
        self._advance(need - 1)  # the last token stays: it is the next batch's first input
        t = torch.from_numpy(buf)
        return t[:-1].view(self.batch_size, self.seq_len), t[1:].view(self.batch_size, self.seq_len)

    def _next_chunk(self) -> _Chunk | None:
        assert self._queue is not None
        item = self._queue.get()
        if isinstance(item, _End):
            return None
        if isinstance(item, _Failed):
            self._shutdown()
            raise item.error
        if self._skip:
            # First chunk after a restore: drop the tokens of the document that were already handed out.
            skip, self._skip = self._skip, 0
            if skip >= len(item.tokens):
                raise NanochatError(f"loader state points past its document (offset {skip}); the data files changed "
                                    "since the checkpoint was written")
            self._chunks.append(item)
            self._head = skip
            return item
        self._chunks.append(item)
        return item

    def _gather(self, need: int) -> np.ndarray | None:
        parts, have, idx, head = [], 0, 0, self._head
        while have < need:
            if idx >= len(self._chunks):
                if self._next_chunk() is None:
                    return None
                head = self._head if idx == 0 else 0
            chunk = self._chunks[idx]
            start = head if idx == 0 else 0
            take = min(need - have, len(chunk.tokens) - start)
            parts.append(chunk.tokens[start:start + take])
            have += take
            idx += 1
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()

    def _advance(self, n: int) -> None:
        while n:
            chunk = self._chunks[0]
            left = len(chunk.tokens) - self._head
            if n < left:
                self._head += n
                return
            n -= left
            self._chunks.popleft()
            self._head = 0

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable position of the next token to hand out (plus the shape it was made with)."""
        if self._chunks:
            c = self._chunks[0]
            doc = int(np.searchsorted(c.ends, self._head, side="right"))
            doc_start = int(c.ends[doc - 1]) if doc else 0
            pos = {"epoch": c.epoch, "file": c.file, "row_group": c.row_group, "row": c.row + doc * self.world_size,
                   "offset": self._head - doc_start}
        else:
            pos = dict(self._start)
        return {"version": STATE_VERSION, **pos, "rank": self.rank, "world_size": self.world_size,
                "num_files": len(self.files), "files": [Path(f).name for f in self.files]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise NanochatError(f"unknown loader state version {state.get('version')!r}")
        if (state.get("rank"), state.get("world_size")) != (self.rank, self.world_size):
            raise NanochatError(
                f"loader state was saved by rank {state.get('rank')} of {state.get('world_size')}, this is rank "
                f"{self.rank} of {self.world_size}", "resume with the same number of processes as the checkpoint")
        if state.get("files") is not None and state["files"] != [Path(f).name for f in self.files]:
            raise NanochatError("the data shards differ from those the loader state was saved with",
                                "restore the same base_data/ shards before resuming")
        self._shutdown()
        self._chunks.clear()
        self._head = 0
        self._done = False
        self._start = {k: int(state[k]) for k in ("epoch", "file", "row_group", "row", "offset")}

    # ------------------------------------------------------------------ producer thread
    def _launch(self) -> None:
        self._queue = queue.Queue(maxsize=self.prefetch)
        self._stop = threading.Event()
        self._skip = self._start["offset"]
        self._thread = threading.Thread(target=self._produce, args=(dict(self._start), self._queue, self._stop),
                                        name="token-loader", daemon=True)
        self._thread.start()

    def _shutdown(self) -> None:
        if self._thread is not None and self._stop is not None:
            self._stop.set()
            self._thread.join(timeout=10)
        self._thread = None
        self._queue = None

    def close(self) -> None:
        self._shutdown()

    def __del__(self):  # a dropped loader must not leave its thread tokenizing
        try:
            self._shutdown()
        except Exception:
            pass

    def _produce(self, start: dict[str, int], q: queue.Queue, stop: threading.Event) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        def put(item) -> None:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            raise _Stopped

        try:
            epoch = start["epoch"]
            seek = (start["file"], start["row_group"])
            seeking = seek != (0, 0) or start["row"] > self.rank
            while True:
                full_pass, produced = not seeking, False
                for fi, path in enumerate(self.files):
                    if seeking and fi < seek[0]:
                        continue
                    try:
                        pf = pq.ParquetFile(path)
                    except Exception as e:
                        raise NanochatError(f"cannot read parquet shard {path}: {e}",
                                            "delete it and run `nanochat data fetch base` again") from None
                    for rg in range(pf.metadata.num_row_groups):
                        if seeking and (fi, rg) < seek:
                            continue
                        first_row = start["row"] if seeking and (fi, rg) == seek else self.rank
                        seeking = False
                        column = pf.read_row_group(rg, columns=[self.text_column]).column(0)
                        rows = list(range(first_row, len(column), self.world_size))  # this rank's rows
                        if not rows:
                            continue
                        if self.world_size > 1 or first_row:
                            column = column.take(pa.array(rows, type=pa.int64()))
                        texts = column.to_pylist()
                        for i in range(0, len(texts), self.tokenize_batch):
                            if stop.is_set():
                                raise _Stopped
                            batch = [t or "" for t in texts[i:i + self.tokenize_batch]]
                            ids = self.tokenizer.encode_batch(batch, prepend=self._bos)
                            lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
                            flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64,
                                               count=int(lens.sum()))
                            put(_Chunk(epoch, fi, rg, rows[i], flat, np.cumsum(lens)))
                            produced = True
                    del pf
                if full_pass and not produced:
                    raise NanochatError(
                        f"rank {self.rank} of {self.world_size} gets no data: the {len(self.files)} shard(s) have "
                        f"fewer rows than there are ranks", "use more shards or fewer processes")
                seeking = False
                if not self.loop:
                    put(_End())
                    return
                epoch += 1
        except _Stopped:
            return
        except BaseException as e:  # hand the error to the consumer instead of dying silently
            try:
                put(_Failed(e))
            except _Stopped:
                pass


def measure_loader_throughput(files: Sequence[str | Path], tokenizer: Any, batch_size: int, seq_len: int,
                              seconds: float = 5.0) -> dict[str, float]:
    """Tokens per second the loader hands out when nothing else runs (what `nanochat bench` reports).
    The first batch (thread start, first row group read) is excluded from the timing."""
    loader = TokenLoader(files, tokenizer, batch_size, seq_len)
    try:
        next(loader)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            next(loader)
            n += 1
        dt = time.perf_counter() - t0
    finally:
        loader.close()
    tokens = n * batch_size * seq_len
    return {"tokens": tokens, "seconds": round(dt, 3), "tokens_per_s": round(tokens / dt, 1),
            "batch_size": batch_size, "seq_len": seq_len}
