"""Run `nanochat serve`: bind, load the checkpoint, probe the batched decoder, serve under uvicorn, stop cleanly.

The port is bound before the model loads, so a port in use is one line at once rather than after the load.
Ctrl-C or SIGTERM: no new connections or requests; replies in progress get `serve.shutdown_grace` seconds to
finish, then they are cancelled; the command exits 0 (a second Ctrl-C skips the wait). uvicorn re-raises the
signal after a graceful stop (exit 130/143), which would make a clean stop look like a crash: that part of its
signal handling is replaced here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Callable

from nanochat_cli.errors import UsageError

# Streamed text is handed to the event loop at most every 10 ms (first tokens and ends at once): at 8 streams
# on cpu-tiny that gave ~15-20% more tokens/s than a hand-over per step (1.5 ms), and 10 ms is below what a
# reader notices.
STREAM_FLUSH_SECONDS = 0.01


@dataclass
class ServeOptions:
    phase: str
    run: str | None = None
    step: int | None = None
    depth: int | None = None
    api_key: str | None = None
    open_browser: bool = False


def model_id(loaded) -> str:
    """The id clients pass as `model`: which run, phase and step is being served."""
    return f"nanochat/{loaded.run or 'model'}/{loaded.phase}/step{loaded.step}"


def bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UsageError(f"cannot resolve --host {host!r} ({e.strerror})", "pass an IP address such as 127.0.0.1") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror})",
                         "choose another --port (0 picks a free one) or stop what uses it") from None
    # Listen now: a client that connects while the model loads waits in the backlog instead of being refused
    # (uvicorn starts accepting once the app is ready; asyncio's listen() on it again is harmless).
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # listening everywhere: this machine can reach it on loopback
        host = "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def serve(cfg, opts: ServeOptions, log: Callable[[str], None]) -> None:
    sc = cfg.serve
    if not is_loopback(sc.host) and not opts.api_key:
        log(f"warning: listening on {sc.host} without --api-key: anyone who can reach this port can use the model "
            "(set --api-key or NANOCHAT_API_KEY)")
    sock = bind(sc.host, sc.port)  # before the slow imports: a busy port is said at once
    scheduler = None
    try:
        scheduler, app, threads = _prepare(cfg, opts, log)
        _run(cfg, opts, sock, scheduler, app, threads, log)
    finally:
        if scheduler is not None:
            scheduler.stop()
        sock.close()
    s = scheduler.stats
    log(f"stopped: {s['requests']} requests, {s['tokens']} tokens generated")


def _prepare(cfg, opts: ServeOptions, log: Callable[[str], None]):
    """Load the checkpoint, start (and probe) the decoder, build the app."""
    import torch

    from nanochat_cli.model.inference import load_for_inference
    from nanochat_cli.serve.app import Settings, build_app
    from nanochat_cli.serve.protocol import Limits
    from nanochat_cli.serve.scheduler import Scheduler

    sc = cfg.serve
    threads = sc.threads or _default_threads()
    torch.set_num_threads(threads)
    loaded = load_for_inference(cfg, opts.phase, opts.step, run=opts.run, depth=opts.depth)
    log(loaded.description)
    scheduler = Scheduler(loaded.model, loaded.tokenizer, max_batch=sc.max_batch, max_queue=sc.max_queue,
                          threads=threads, log=log, flush_interval=STREAM_FLUSH_SECONDS)
    scheduler.start()
    limits = Limits(model_id=model_id(loaded), phase=loaded.phase, capacity=loaded.model.config.seq_len,
                    vocab_size=min(loaded.model.config.vocab_size, loaded.tokenizer.vocab_size),
                    max_batch=sc.max_batch, max_tokens=sc.max_tokens, default_max_tokens=cfg.chat.max_tokens,
                    default_temperature=cfg.chat.temperature, default_top_k=cfg.chat.top_k)
    settings = Settings(api_key=opts.api_key, max_body_bytes=sc.max_body_bytes, request_timeout=sc.request_timeout,
                        log_prompts=sc.log_prompts)
    return scheduler, build_app(scheduler, loaded.tokenizer, limits, settings, log), threads


def _run(cfg, opts: ServeOptions, sock: socket.socket, scheduler, app, threads: int,
         log: Callable[[str], None]) -> None:
    import logging

    import uvicorn

    sc = cfg.serve
    url = url_of(sock)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        import asyncio

        scheduler.post = _Mailbox(asyncio.get_running_loop()).post
        exact = scheduler.exactness
        log(f"serving {app.state.model_id} at {url} — web chat: {url} · API: {url}v1 · {sc.max_batch} sequences "
            f"per step ({threads} thread{'s' if threads > 1 else ''}; exact batch sizes {exact.get('batch_sizes')}) "
            "· Ctrl-C stops")
        if opts.open_browser:
            threading.Thread(target=_open, args=(url, log), daemon=True).start()
        yield
        scheduler.stop()

    app.router.lifespan_context = lifespan
    # uvicorn's own messages (a malformed HTTP request, an exception escaping the app with its traceback) go to
    # stderr through our sink; its access log is replaced by the app's one line per request.
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: log("uvicorn: " + logging.Formatter().format(record))
    logging.getLogger("uvicorn").addHandler(handler)
    logging.getLogger("uvicorn").propagate = False
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", server_header=False,
                            timeout_graceful_shutdown=sc.shutdown_grace, log_level="warning")
    server = _Server(config, on_stop=lambda name: _stopping(scheduler, name, sc.shutdown_grace, log))
    server.run(sockets=[sock])


class _Mailbox:
    """Hands the worker's events to the event loop: one wake-up per batch that the loop has not yet picked up.
    Waking the loop costs the worker a syscall and a wait for the GIL, so when the loop is still busy with the
    previous step's events, the next step's are added to the same delivery instead of waking it again."""

    def __init__(self, loop):
        self.loop = loop
        self.lock = threading.Lock()
        self.pending: list = []

    def post(self, events: list) -> None:
        with self.lock:
            wake = not self.pending
            self.pending.extend(events)
        if wake:
            self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self.lock:
            events, self.pending = self.pending, []
        for job, event in events:
            job.tag.put_nowait((job, event))


def _default_threads() -> int:
    import os

    # Decoding a small model gains little from a second thread, and the HTTP side (and, on a laptop, the
    # client) needs a core: leave one free when there are few.
    cores = len(os.sched_getaffinity(0))
    return max(1, cores - 1) if cores <= 4 else cores


def _stopping(scheduler, signal_name: str, grace: float, log: Callable[[str], None]) -> None:
    scheduler.closing = True
    load = scheduler.load()
    busy = load["active"] + load["queued"]
    log(f"{signal_name}: stopping" + (f"; {busy} request(s) in progress get up to {grace:g} s to finish "
                                       "(Ctrl-C again to cancel them now)" if busy else ""))


def _open(url: str, log: Callable[[str], None]) -> None:
    import webbrowser

    if not webbrowser.open(url):
        log(f"note: no browser could be opened; visit {url}")


def _make_server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server with our signal handling: first signal = graceful stop, second = cancel now; no
        re-raise after the stop (see the module docstring)."""

        def __init__(self, config, on_stop: Callable[[str], None]):
            super().__init__(config)
            self._on_stop = on_stop

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return

            def handle(signum, frame):
                if self.should_exit:
                    self.force_exit = True
                    return
                self.should_exit = True
                self._on_stop(signal.Signals(signum).name)

            old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, h in old.items():
                    signal.signal(s, h)

    return Server


def _Server(config, on_stop):  # noqa: N802 - built lazily so importing this module does not import uvicorn
    return _make_server_class()(config, on_stop)
