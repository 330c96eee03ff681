"""The Starlette app: the OpenAI-compatible routes, the web page, /health, and the guards around them.

Handlers never touch torch: they validate (protocol.py), submit a Job to the scheduler and wait on an asyncio
queue that the worker thread fills, so the event loop stays free. A client that goes away (a closed stream, or a
dropped connection while a non-streamed reply is computed) cancels its job at once. Guards: a bearer key
compared in constant time (`--api-key`), a body size limit read as the body arrives (not trusted from
Content-Length alone), a per-request deadline, and one log line per request (method, path, status, tokens, ms;
the prompt only with --log-prompts). Every error, including 404/405 and unexpected ones, leaves in OpenAI's
error shape, without a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from nanochat_cli.serve import protocol
from nanochat_cli.serve.protocol import ApiError, Limits, Prepared
from nanochat_cli.serve.scheduler import Job, QueueFull, Scheduler, ShuttingDown

RETRY_AFTER_SECONDS = 2
TIMEOUT = object()  # put in a request's event queue when its deadline passes


@dataclass
class Settings:
    api_key: str | None = None
    max_body_bytes: int = 1 << 20
    request_timeout: float = 300.0
    log_prompts: bool = False


def _log_record(request: Request) -> dict:
    return request.scope.setdefault("nanochat.log", {})


def page_and_policy() -> tuple[bytes, str]:
    """The web page and a Content-Security-Policy that lets only its own inline script and style run: even if
    model text ever reached the DOM as HTML, an injected <script> would not execute."""
    html = resources.files("nanochat_cli.serve").joinpath("page.html").read_text(encoding="utf-8")

    def digest(pattern: str) -> str:
        m = re.search(pattern, html, flags=re.S)
        return "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1).encode("utf-8")).digest()).decode() + "'"

    policy = (f"default-src 'none'; script-src {digest(r'<script>(.*?)</script>')}; "
              f"style-src {digest(r'<style>(.*?)</style>')}; connect-src 'self'; img-src data:; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return html.encode("utf-8"), policy


def build_app(scheduler: Scheduler, tokenizer, limits: Limits, settings: Settings,
              log: Callable[[str], None]) -> Starlette:
    api = _Api(scheduler, tokenizer, limits, settings)
    routes = [
        Route("/", api.index, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/models/{name:path}", api.one_model, methods=["GET"]),
        Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                                                       Exception: _unexpected})
    app.state.model_id = limits.model_id
    app.add_middleware(_Auth, api_key=settings.api_key)
    app.add_middleware(_AccessLog, log=log, log_prompts=settings.log_prompts)
    return app


class _Api:
    """The endpoints, sharing the scheduler, tokenizer, limits and settings of one server."""

    def __init__(self, scheduler: Scheduler, tokenizer, limits: Limits, settings: Settings):
        self.scheduler, self.tokenizer, self.limits, self.settings = scheduler, tokenizer, limits, settings
        self.page, self.policy = page_and_policy()
        self.limits_created = int(time.time())

    async def index(self, request: Request) -> Response:
        return Response(self.page, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": self.policy, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff"})

    async def health(self, request: Request) -> Response:
        sched = self.scheduler
        return JSONResponse({"status": "stopping" if sched.closing else "ok", "model": self.limits.model_id,
                             **sched.load(), "decode": {"threads": sched.threads, **sched.exactness}})

    def model_card(self) -> dict:
        return {"id": self.limits.model_id, "object": "model", "created": self.limits_created, "owned_by": "nanochat",
                "phase": self.limits.phase, "context_length": self.limits.capacity}

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self.model_card()]})

    async def one_model(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in (self.limits.model_id, self.limits.phase):
            raise ApiError(404, f"the model '{name[:100]}' does not exist; this server serves '{self.limits.model_id}'",
                           param="model", code="model_not_found")
        return JSONResponse(self.model_card())

    async def chat_completions(self, request: Request) -> Response:
        body = protocol.parse_json(await _read_body(request, self.settings.max_body_bytes))
        return await self._generate(request, "chat", protocol.prepare_chat(body, self.tokenizer, self.limits))

    async def completions(self, request: Request) -> Response:
        body = protocol.parse_json(await _read_body(request, self.settings.max_body_bytes))
        return await self._generate(request, "text", protocol.prepare_completion(body, self.tokenizer, self.limits))

    async def _generate(self, request: Request, kind: str, prep: Prepared) -> Response:
        record = _log_record(request)
        record["prompt_tokens"] = sum(len(p) for p in prep.prompts)
        if self.settings.log_prompts:
            record["prompt"] = prep.prompt_text
        queue: asyncio.Queue = asyncio.Queue()
        jobs = [Job(ids, prep.sampling, prep.n, prep.stream, tag=queue) for ids in prep.prompts]
        try:
            for job in jobs:
                self.scheduler.submit(job)
        except (QueueFull, ShuttingDown) as e:
            for job in jobs:
                self.scheduler.cancel(job)
            if isinstance(e, QueueFull):
                raise ApiError(429, f"the server is busy: {self.scheduler.max_queue} requests are already waiting; "
                                    "retry shortly", type="rate_limit_error", code="queue_full",
                               headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
            raise ApiError(503, "the server is shutting down", type="server_error", code="shutting_down",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        # The deadline arrives as an event in the same queue: no timeout wrapper around every token's wait.
        timer = asyncio.get_running_loop().call_later(self.settings.request_timeout, queue.put_nowait, TIMEOUT)
        run = _Run(kind, jobs, prep, queue, timer)
        if prep.stream:
            return StreamingResponse(self._sse(run, record), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await self._collect(request, run, record)

    async def _collect(self, request: Request, run: "_Run", record: dict) -> Response:
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            while not run.complete:
                get = asyncio.ensure_future(run.queue.get())
                done, _ = await asyncio.wait({get, gone}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    record["note"] = "client left"
                    return Response(status_code=499)  # nobody reads it; nginx's "client closed request"
                if get.result() is TIMEOUT:
                    record["note"] = "timeout"
                    raise _timeout(self.settings.request_timeout)
                run.take(get.result())
        finally:
            gone.cancel()
            run.end(self.scheduler)
        record["completion_tokens"] = run.completion_tokens
        use = protocol.usage(run.prompt_tokens, run.completion_tokens)
        return JSONResponse(protocol.response(run.kind, run.rid, self.limits.model_id, run.choices(), use))

    async def _sse(self, run: "_Run", record: dict):
        chunks = _Chunks(run, self.limits.model_id)
        try:
            while not run.complete:
                out, failure = [], None
                for item in [await run.queue.get()] + _drain(run.queue):
                    if item is TIMEOUT:
                        failure, record["note"] = _timeout(self.settings.request_timeout), "timeout"
                        break
                    job, ev = item
                    if ev[0] == "error":
                        failure, record["note"] = ApiError(500, ev[1], type="server_error"), "error"
                        break
                    out.append(chunks.of(job, ev))
                    run.take(item)
                if out:
                    yield "".join(out)
                if failure is not None:
                    yield chunks.event(failure.body())
                    break
            else:
                if run.prep.include_usage:
                    use = protocol.usage(run.prompt_tokens, run.completion_tokens)
                    yield chunks.event(protocol.usage_chunk(run.kind, run.rid, chunks.created, self.limits.model_id,
                                                            use))
            yield "data: [DONE]\n\n"
        finally:  # also reached when the client disconnects: the stream is cancelled here
            if not run.complete and "note" not in record:
                record["note"] = "client left"
            run.end(self.scheduler)
            record["completion_tokens"] = run.completion_tokens


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    message = {404: f"no such endpoint: {request.method} {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return JSONResponse(ApiError(exc.status_code, message, code=code).body(), status_code=exc.status_code,
                        headers=exc.headers)

async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette re-raises it after this response: uvicorn then logs it with its traceback (server.py routes
    # that to stderr). The client gets no detail.
    return JSONResponse(ApiError(500, "internal error (see the server log)", type="server_error").body(),
                        status_code=500)


def _timeout(seconds: float) -> ApiError:
    return ApiError(504, f"the reply took longer than the server's request timeout ({seconds:g} s)",
                    type="timeout_error", code="request_timeout")


def _drain(queue: asyncio.Queue) -> list:
    out = []
    while True:
        try:
            out.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            return out


class _Chunks:
    """Server-sent events for one streamed request. A token's event is a prebuilt prefix + the JSON string of its
    text + a suffix: building and dumping the whole chunk object per token cost ~4x as much on the event loop,
    which shares the CPU with decoding."""

    MARK = "\u0000nanochat\u0000"

    def __init__(self, run: "_Run", model_id: str):
        self.run, self.model_id, self.created = run, model_id, int(time.time())
        self.started: set[int] = set()
        self._frames: dict[int, tuple[str, str]] = {}

    @staticmethod
    def event(obj: dict) -> str:
        return "data: " + json.dumps(obj, ensure_ascii=False) + "\n\n"

    def _chunk(self, index: int, text: str | None, finish: str | None = None, first: bool = False) -> dict:
        r = self.run
        return protocol.chunk(r.kind, r.rid, self.created, self.model_id, index, text, finish, first=first,
                              with_usage=r.prep.include_usage)

    def of(self, job: Job, ev: tuple) -> str:
        index = self.run.index_of(job, ev[1] if ev[0] == "text" else ev[1].index)
        first = index not in self.started
        self.started.add(index)
        if ev[0] == "text":
            if first:
                return self.event(self._chunk(index, ev[2], first=True))
            frame = self._frames.get(index)
            if frame is None:
                head, _, tail = self.event(self._chunk(index, self.MARK)).partition(json.dumps(self.MARK))
                frame = self._frames[index] = (head, tail)
            return frame[0] + json.dumps(ev[2], ensure_ascii=False) + frame[1]
        out = self.event(self._chunk(index, "", first=True)) if first and self.run.kind == "chat" else ""
        return out + self.event(self._chunk(index, None, ev[1].finish_reason))


class _Run:
    """The jobs of one request and what has come back for them so far."""

    def __init__(self, kind: str, jobs: list[Job], prep: Prepared, queue: asyncio.Queue, timer):
        self.kind, self.jobs, self.prep, self.queue, self.timer = kind, jobs, prep, queue, timer
        self.rid = protocol.new_id(kind)
        self.prompt_tokens = sum(len(p) for p in prep.prompts)
        self.results: dict[int, tuple[str, str]] = {}
        self.texts: dict[int, list[str]] = {}
        self.completion_tokens = 0
        self.error: str | None = None
        self.total = len(jobs) * prep.n

    @property
    def complete(self) -> bool:
        return len(self.results) == self.total or self.error is not None

    def index_of(self, job: Job, sample: int) -> int:
        return self.jobs.index(job) * self.prep.n + sample

    def take(self, item) -> None:
        job, ev = item
        if ev[0] == "error":
            self.error = ev[1]
            return
        if ev[0] == "text":
            self.texts.setdefault(self.index_of(job, ev[1]), []).append(ev[2])
            return
        fin = ev[1]
        index = self.index_of(job, fin.index)
        job.finished += 1
        self.completion_tokens += fin.completion_tokens
        self.results[index] = ("".join(self.texts.get(index, [])) + fin.text, fin.finish_reason)

    def choices(self) -> list[tuple[int, str, str]]:
        if self.error is not None:
            raise ApiError(500, self.error, type="server_error")
        return [(i, *self.results[i]) for i in sorted(self.results)]

    def end(self, scheduler: Scheduler) -> None:
        """The response is over (done, failed, timed out or abandoned): stop its timer and whatever still runs."""
        self.timer.cancel()
        for job in self.jobs:
            if job.finished < job.n:
                scheduler.cancel(job)


async def _read_body(request: Request, limit: int) -> bytes:
    too_big = ApiError(413, f"the request body is larger than the server's limit of {limit:,} bytes",
                       code="request_too_large")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "Content-Length is not a number", code="invalid_request")
        if int(length) > limit:
            raise too_big
    chunks, size = [], 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise too_big
        chunks.append(piece)
    return b"".join(chunks)


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read, so receive() waits for that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class _Auth:
    """With an API key, /v1/* needs `Authorization: Bearer KEY` (compared in constant time); / and /health do
    not (the page asks for the key itself)."""

    def __init__(self, app, api_key: str | None):
        self.app, self.key = app, api_key.encode("utf-8") if api_key else None

    async def __call__(self, scope, receive, send):
        if self.key is None or scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return await self.app(scope, receive, send)
        message = ("missing API key: send the header 'Authorization: Bearer KEY'" if not header
                   else "incorrect API key")
        err = ApiError(401, message, code="invalid_api_key")
        await JSONResponse(err.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


class _AccessLog:
    """One line per request once its response is complete: client, method, path, status, tokens, ms."""

    def __init__(self, app, log: Callable[[str], None], log_prompts: bool):
        self.app, self.log, self.log_prompts = app, log, log_prompts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.monotonic()
        record = scope.setdefault("nanochat.log", {})
        status = [500]

        async def send_and_watch(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self.log(self._line(scope, status[0], record, (time.monotonic() - start) * 1000))

    def _line(self, scope, status: int, record: dict, ms: float) -> str:
        client = scope.get("client") or ("-", 0)
        parts = [f"{client[0]} {scope['method']} {scope['path']} {status}"]
        if "prompt_tokens" in record:
            parts.append(f"tokens {record['prompt_tokens']}+{record.get('completion_tokens', 0)}")
        parts.append(f"{ms:.0f} ms")
        if "note" in record:
            parts.append(f"({record['note']})")
        if self.log_prompts and "prompt" in record:
            parts.append("prompt " + record["prompt"])
        return " ".join(parts)
