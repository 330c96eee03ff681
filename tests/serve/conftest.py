"""Checkpoints for serving tests and a real `nanochat serve` process per test module.

Two tiny models with the byte-level tokenizer (no training, no files):
- `random_model`: every weight random (GQA: 4 query heads, 2 kv heads), so attention matters and greedy
  replies differ by prompt: the model for exactness tests (alone == batched, stream == non-stream).
- `scripted_model`: its blocks are the identity and its head maps each token to a fixed successor, so the reply
  to anything is `<script>`, a calculator call 6*7 (the server forces 42), then " la la la …" until max_tokens:
  what the web page test needs (HTML in the reply, a tool call, a long stream to stop).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.conftest import NO_NETWORK_ENV, cli_env
from tests.threads import one_thread  # noqa: F401  (autouse for this folder)

SCRIPT = "<script>"  # the scripted model's reply starts with this, then a tool call, then " la la la…"


def random_model(seq_len: int = 256, seed: int = 0):
    import torch

    from nanochat_cli.model.gpt import GPT, GPTConfig
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    tok = ByteTokenizer()
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, seq_len=seq_len))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.4)
    return model.eval(), tok


def scripted_model(seq_len: int = 2048, turn_break: bool = False, n_layer: int = 1):
    """turn_break: after the first " la" the model samples `<|user_end|>` and goes on as a new turn (what a
    small trained model sometimes does); a reply must end there. n_layer: layers past the first are all zero
    (the residual stream passes through them unchanged): the same replies, only slower to compute."""
    import torch

    from nanochat_cli.model.gpt import GPT, GPTConfig
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    tok = ByteTokenizer()
    sid = tok.special_id
    chain = [sid("<|assistant_start|>"), *SCRIPT.encode(), sid("<|python_start|>"), *b"6*7", sid("<|python_end|>")]
    successor = dict(zip(chain, chain[1:]))
    # after the forced <|output_start|>42<|output_end|>, then a loop " la la la ..."
    successor[sid("<|output_end|>")] = ord(" ")
    successor.update({ord(" "): ord("l"), ord("l"): ord("a"), ord("a"): ord(" ")})
    if turn_break:
        successor.update({ord("a"): sid("<|user_end|>"), sid("<|user_end|>"): sid("<|assistant_start|>")})
    width = 320  # ≥ vocab (265): one embedding dimension per token
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=n_layer, n_embd=width, n_head=5, n_kv_head=5, seq_len=seq_len))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.transformer.wte.weight[:tok.vocab_size, :tok.vocab_size] = torch.eye(tok.vocab_size)
        for a, b in successor.items():
            model.lm_head.weight[b, a] = 1.0  # logit of b after a: sqrt(width) ≈ 17.9 → 12.5 after the soft-cap
    return model.eval(), tok


def save_model(home: Path, model, tok, phase: str = "sft", run: str = "serve-test", step: int = 5) -> Path:
    from nanochat_cli.checkpoint import save_checkpoint
    from nanochat_cli.paths import Paths

    meta = {"phase": phase, "run_id": run, "model_config": asdict(model.config), "num_iterations": step,
            "tokenizer": {"kind": "byte", "vocab_size": tok.vocab_size, "fingerprint": None}, "metrics": {}}
    return save_checkpoint(Paths(home).run_checkpoints(run, phase), step, model.state_dict(), [], meta)


class Server:
    """A `nanochat serve` subprocess on a free port of 127.0.0.1; `url` ends without a slash."""

    def __init__(self, home: Path, *args: str, env: dict | None = None):
        self.home = home
        full_env = cli_env({"NANOCHAT_HOME": str(home), **NO_NETWORK_ENV, **(env or {})})
        for k in [k for k in full_env if k.startswith("NANOCHAT_") and k != "NANOCHAT_HOME" and k not in (env or {})]:
            full_env.pop(k)
        # Not in a network namespace: the test talks to it over loopback. It makes no outside connection
        # (NO_NETWORK_ENV would stop one anyway).
        cmd = [sys.executable, "-m", "nanochat_cli", "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.url = self._wait_for_url()

    def _wait_for_url(self, timeout: float = 120) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            m = re.search(r"serving \S+ at (http://127\.0\.0\.1:\d+)/", line)
            if m:
                # keep reading its log, so a full pipe never blocks it; `lines` grows as it logs
                self._drainer = threading.Thread(target=self._drain, daemon=True)
                self._drainer.start()
                return m.group(1)
        self.proc.kill()
        raise RuntimeError("server did not start:\n" + "\n".join(self.lines) + self.proc.stderr.read())

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def log_lines(self, settle: float = 0.3) -> list[str]:
        time.sleep(settle)  # a request's log line is written just after its response
        return list(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        """Signal it; the exit code and everything it logged."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._drainer.join(10)
        return self.proc.returncode, "\n".join(self.lines)


@pytest.fixture(scope="module")
def random_server(tmp_path_factory):
    """One server per test module on the random model (seq 256), with the tokenizer for counting."""
    home = tmp_path_factory.mktemp("serve-home")
    model, tok = random_model(seq_len=256)
    save_model(home, model, tok)
    server = Server(home, "--max-batch", "8")
    server.tokenizer = tok
    yield server
    server.stop()
