"""Continuous batching: every live request decoded together, one token per forward, on one worker thread.

A request waits in a bounded queue until it has a KV-cache slot per sample; then it is prefilled alone (its
`n` samples share that prefill) and joins the running batch at the next step; a sample leaves as soon as it
stops, and its slot goes to whoever is waiting. Each sample keeps its own sampling settings and random
generator (seeded per request and sample index), so what it draws does not depend on its neighbours; greedy
output is bit-identical alone or batched (model/batched.py). The calculator runs here as in `Engine`: when a
sample closes <|python_start|>…<|python_end|> the expression goes to `calculate` (never eval) and the result
is forced as <|output_start|>…<|output_end|>.

All torch work happens on the worker thread, so the event loop keeps answering (/health during a reply).
Results go back in batches through `post` (on the server: one event-loop wake-up): first tokens, ends and
errors at once, text of replies in progress at most every `flush_interval` seconds.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from nanochat_cli.model.calculator import calculate
from nanochat_cli.serve.text import TextStream, token_bytes_of
from nanochat_cli.tokenizer.special import TOOL_TOKENS, reply_stop_ids, special_ids


class QueueFull(Exception):
    """More requests wait than --max-queue allows."""


class ShuttingDown(Exception):
    """The server is stopping and takes no new work."""


@dataclass
class Sampling:
    max_tokens: int
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False  # keep going past <|assistant_end|>/<|bos|> (for benchmarks: fixed lengths)


@dataclass
class Finished:
    index: int
    finish_reason: str  # "stop" or "length"
    completion_tokens: int
    text: str  # the whole text when the job does not stream, else ""


@dataclass
class Job:
    """One prompt and its n samples. Events for it arrive through the scheduler's `post` as
    (job, ("text", index, piece) | ("done", Finished) | ("error", message))."""

    prompt: list[int]
    sampling: Sampling
    n: int = 1
    stream: bool = False
    tag: Any = None  # the caller's: where to deliver this job's events
    cancelled: bool = False
    finished: int = 0  # samples done (the caller counts; the scheduler never reads it)


class _Row:
    """One sample being decoded: its slot is its index in Scheduler._rows."""

    __slots__ = ("job", "index", "pos", "next", "generated", "max_new", "forced", "python", "text", "pieces",
                 "generator", "done")

    def __init__(self, job: Job, index: int, max_new: int, text: TextStream, generator):
        self.job, self.index, self.max_new, self.text, self.generator = job, index, max_new, text, generator
        self.pos = len(job.prompt)  # cache positions filled; the next token goes here
        self.next = -1
        self.generated = 0
        self.forced: deque[int] = deque()
        self.python: list[int] | None = None  # tokens of an open calculator call
        self.pieces: list[str] = []
        self.done = False


def sample_token(logits, s: Sampling, generator) -> int:
    """One token from fp32 logits (vocab,): temperature, then top-k, then top-p (nucleus), then a draw."""
    import torch

    logits = logits / s.temperature
    ids = None
    if s.top_k and s.top_k < logits.size(-1):
        logits, ids = torch.topk(logits, s.top_k)  # sorted, most likely first
    probs = torch.softmax(logits, dim=-1)
    if s.top_p < 1.0:
        if ids is None:
            probs, ids = torch.sort(probs, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        probs = probs * ((torch.cumsum(probs, dim=-1) - probs) < s.top_p)
    choice = int(torch.multinomial(probs, 1, generator=generator))
    return int(ids[choice]) if ids is not None else choice


class Scheduler:
    def __init__(self, model, tokenizer, max_batch: int = 8, max_queue: int = 64, threads: int | None = None,
                 log: Callable[[str], None] = lambda line: None, flush_interval: float = 0.0):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.max_queue, self.threads = max_batch, max_queue, threads
        self.capacity = model.config.seq_len
        self.vocab = min(model.config.vocab_size, tokenizer.vocab_size)  # ids the tokenizer can decode
        self.post: Callable[[list], None] = lambda events: None
        self._log = log
        self._bytes = token_bytes_of(tokenizer)
        self._special = special_ids(tokenizer, TOOL_TOKENS)
        self.stop_ids = reply_stop_ids(tokenizer)
        self._pending: deque[Job] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._rows: list[_Row] = []
        self._events: list = []
        self.flush_interval = flush_interval
        self._urgent = False  # a first token, an end or an error waits to be sent: send at once
        self._last_flush = 0.0
        self._stop = False
        self.closing = False
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.exactness: dict = {}
        self.decoder = None
        self.stats = {"requests": 0, "tokens": 0, "steps": 0}
        self._thread: threading.Thread | None = None

    # --- the caller's side (event loop thread) ----------------------------------------------------------

    def start(self) -> None:
        """Start the worker; returns once the decoder is built and probed (raises what failed there)."""
        self._thread = threading.Thread(target=self._run, name="nanochat-decode", daemon=True)
        self._thread.start()
        self.ready.wait()
        if self.failure is not None:
            raise self.failure

    def submit(self, job: Job) -> None:
        with self._lock:
            if self.closing or self._stop:
                raise ShuttingDown
            # A job that fits in the free slots starts at the next step; only the ones that must wait count
            # against max_queue (so --max-queue 0 means: no waiting, busy is 429 at once).
            free = self.max_batch - len(self._rows) - sum(j.n for j in self._pending)
            if job.n > free and len(self._pending) >= self.max_queue:
                raise QueueFull
            self._pending.append(job)
        self._wake.set()

    def cancel(self, job: Job) -> None:
        """Stop generating for `job` (its client left or timed out); its slots free at the next step."""
        job.cancelled = True
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def load(self) -> dict:
        return {"active": len(self._rows), "queued": len(self._pending), "max_batch": self.max_batch}

    # --- the worker ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        import torch

        from nanochat_cli.model.batched import BatchedDecoder

        try:
            if self.threads:
                torch.set_num_threads(self.threads)  # per thread under OpenMP: set it where the work runs
            self.decoder = BatchedDecoder(self.model, self.max_batch)
            self.exactness = self.decoder.probe()
        except BaseException as e:  # reported by start() on the caller's thread
            self.failure = e
            self.ready.set()
            return
        self.ready.set()
        with torch.inference_mode():
            while not self._stop:
                self._wake.clear()
                try:
                    admitted = self._admit()
                    self._drop_cancelled()
                    if self._rows:
                        self._step()
                    elif not admitted:
                        self._flush(urgent=True)
                        self._wake.wait(1.0)
                except Exception:
                    self._log("error: decoding failed; the requests in progress get an error:\n"
                              + traceback.format_exc().rstrip())
                    for job in {r.job for r in self._rows}:
                        self._events.append((job, ("error", "internal error while decoding (see the server log)")))
                    self._rows = []
                    self._urgent = True
                self._flush()
        self._abandon("the server is shutting down")

    def _flush(self, urgent: bool = False) -> None:
        """Hand the events to the caller. Mid-reply text may wait up to `flush_interval` seconds and go with the
        next steps' text: each hand-over costs the worker a wait for the GIL while the event loop writes."""
        if not self._events:
            return
        if not (urgent or self._urgent) and time.monotonic() - self._last_flush < self.flush_interval:
            return
        events, self._events = self._events, []
        self._urgent, self._last_flush = False, time.monotonic()
        try:
            self.post(events)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            pass

    def _abandon(self, message: str) -> None:
        with self._lock:
            jobs = list(self._pending) + [r.job for r in self._rows]
            self._pending.clear()
        self._rows = []
        for job in dict.fromkeys(jobs):
            self._events.append((job, ("error", message)))
        self._flush(urgent=True)

    def _admit(self) -> bool:
        """Prefill waiting jobs while their samples fit in free slots (first come, first served)."""
        admitted = False
        while True:
            with self._lock:
                if not self._pending:
                    return admitted
                job = self._pending[0]
                if not job.cancelled and len(self._rows) + job.n > self.max_batch:
                    return admitted
                self._pending.popleft()
            if job.cancelled:
                continue
            admitted = True
            try:
                self._prefill(job)
            except Exception:
                self._log("error: prefill failed:\n" + traceback.format_exc().rstrip())
                self._rows = [r for r in self._rows if r.job is not job]
                self._events.append((job, ("error", "internal error while reading the prompt (see the server log)")))
            self._flush(urgent=True)  # first tokens out before the next step: time to first token

    def _prefill(self, job: Job) -> None:
        import torch

        self.stats["requests"] += 1
        slot = len(self._rows)
        logits = self.decoder.prefill(slot, job.prompt)[:self.vocab]
        for i in range(1, job.n):
            self.decoder.copy_slot(slot, slot + i, len(job.prompt))
        max_new = min(job.sampling.max_tokens, self.capacity - len(job.prompt))
        greedy = int(logits.argmax()) if job.sampling.temperature <= 0 else None
        for i in range(job.n):
            generator = None
            if job.sampling.temperature > 0:
                seed = job.sampling.seed if job.sampling.seed is not None else random.getrandbits(63)
                generator = torch.Generator(device=self.decoder.device).manual_seed((seed + i) % 2 ** 63)
            row = _Row(job, i, max_new, TextStream(self._bytes, job.sampling.stop), generator)
            self._rows.append(row)
            self._accept(row, greedy if greedy is not None else sample_token(logits, job.sampling, generator))
        self._remove_done()

    def _step(self) -> None:
        rows = self._rows
        logits = self.decoder.step([r.next for r in rows], [r.pos for r in rows])[:, :self.vocab]
        self.stats["steps"] += 1
        greedy = None
        if any(r.generator is None and not r.forced for r in rows):
            greedy = logits.argmax(dim=-1).tolist()
        for i, r in enumerate(rows):
            r.pos += 1
            if r.forced:
                tok = r.forced.popleft()
            elif r.generator is None:
                tok = greedy[i]
            else:
                tok = sample_token(logits[i], r.job.sampling, r.generator)
            self._accept(r, tok)
        self._remove_done()

    def _accept(self, r: _Row, tok: int) -> None:
        """Take `tok` as row r's next token: stop, tool call, text, limits."""
        if tok in self.stop_ids and not r.job.sampling.ignore_eos:
            self._finish(r, "stop")
            return
        r.generated += 1
        self.stats["tokens"] += 1
        self._track_tool(r, tok)
        piece = r.text.feed(tok)
        if piece:
            self._emit_text(r, piece)
        if r.text.stopped:
            self._finish(r, "stop")
        elif r.generated >= r.max_new:
            self._finish(r, "length")
        else:
            r.next = tok

    def _track_tool(self, r: _Row, tok: int) -> None:
        sp = self._special
        ps, pe = sp.get("<|python_start|>"), sp.get("<|python_end|>")
        if ps is None or pe is None:
            return
        if tok == ps:
            r.python = []
        elif tok == pe and r.python is not None:
            result = calculate(self.tokenizer.decode(r.python))
            r.python = None
            os_, oe = sp.get("<|output_start|>"), sp.get("<|output_end|>")
            if result is not None and os_ is not None and oe is not None:
                r.forced.extend([os_, *self.tokenizer.encode(result), oe])
        elif r.python is not None:
            r.python.append(tok)

    def _emit_text(self, r: _Row, piece: str) -> None:
        if r.job.stream:
            self._events.append((r.job, ("text", r.index, piece)))
        else:
            r.pieces.append(piece)

    def _finish(self, r: _Row, reason: str) -> None:
        tail = r.text.finish()
        if tail:
            self._emit_text(r, tail)
        text = "" if r.job.stream else "".join(r.pieces)
        self._events.append((r.job, ("done", Finished(r.index, reason, r.generated, text))))
        self._urgent = True
        r.done = True

    def _drop_cancelled(self) -> None:
        for r in self._rows:
            if r.job.cancelled:
                r.done = True
        self._remove_done()

    def _remove_done(self) -> None:
        """Free the slots of finished rows, keeping live rows packed at the front (the last one moves into
        the hole: one copy of its cached keys/values)."""
        rows = self._rows
        for i in range(len(rows) - 1, -1, -1):
            if not rows[i].done:
                continue
            last = rows.pop()
            if i < len(rows):
                self.decoder.copy_slot(len(rows), i, last.pos)
                rows[i] = last
