"""`nanochat serve` as a command: one-line errors (exit 2), a clean stop on SIGTERM/Ctrl-C (exit 0), a base
model, --open, --log-prompts, the warning for a non-loopback host without a key."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time


from tests.conftest import cli_env
from tests.serve.conftest import Server, random_model, save_model


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def test_without_the_serve_extra_it_names_the_install_command(home):
    code = ("import sys; sys.modules['uvicorn'] = None\n"  # what an environment without the extra looks like
            "from nanochat_cli.cli import main; main(['serve'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=cli_env({"NANOCHAT_HOME": str(home)}))
    assert "pip install 'nanochat-cli[serve]'" in _one_line_error(r)


def test_without_a_checkpoint_it_names_the_training_command(run_cli):
    assert "nanochat train sft" in _one_line_error(run_cli("serve", "--port", "0"))


def test_bad_options_are_one_line(run_cli, home):
    assert "max_batch" in _one_line_error(run_cli("serve", "--max-batch", "0"))
    assert "--api-key is empty" in _one_line_error(run_cli("serve", "--api-key", " "))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "--port" in _one_line_error(run_cli("serve", "--port", str(port)))


def _post(url: str, path: str, body: dict):
    host, port = url.removeprefix("http://").split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()


def test_sigterm_lets_the_reply_in_progress_finish_and_exits_0(tmp_path):
    home = tmp_path / "home"
    model, tok = random_model(seq_len=512)
    save_model(home, model, tok)
    server = Server(home, "--log-prompts")
    got = {}

    def long_reply():
        got["status"], got["body"] = _post(server.url, "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "a private question"}], "max_tokens": 400, "ignore_eos": True,
            "stream": True})

    t = threading.Thread(target=long_reply)
    t.start()
    for _ in range(500):  # wait until it is being decoded
        if '"active": 1' in json.dumps(json.loads(_get(server.url, "/health"))):
            break
    code, log = server.stop(signal.SIGTERM)
    t.join(30)
    assert code == 0, log
    assert got["status"] == 200 and got["body"].decode().rstrip().endswith("data: [DONE]")
    assert "SIGTERM: stopping" in log and "stopped: " in log and "Traceback" not in log
    assert "a private question" in log  # --log-prompts puts the messages in the request's line


def _get(url: str, path: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    c.request("GET", path)
    return c.getresponse().read()


def test_a_base_model_on_all_interfaces_with_open(tmp_path):
    home = tmp_path / "home"
    model, tok = random_model(seq_len=256)
    save_model(home, model, tok, phase="base")
    opened = tmp_path / "opened"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    server = Server(home, "-i", "base", "--host", "0.0.0.0", "--open", env={"BROWSER": str(browser)})
    try:
        status, body = _post(server.url, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
        assert status == 400 and json.loads(body)["error"]["code"] == "unsupported_for_base_model"
        status, body = _post(server.url, "/v1/completions", {"prompt": "The capital", "max_tokens": 4,
                                                             "ignore_eos": True})
        out = json.loads(body)
        assert status == 200 and out["usage"]["completion_tokens"] == 4 and out["model"].endswith("/base/step5")
        assert json.loads(_get(server.url, "/v1/models"))["data"][0]["phase"] == "base"
        # the browser is started from a thread after start-up: on a loaded machine it may come after the requests
        deadline = time.monotonic() + 60
        while not (opened.exists() and opened.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        code, log = server.stop(signal.SIGINT)
    assert code == 0, log
    assert "warning: listening on 0.0.0.0 without --api-key" in log
    assert opened.read_text().strip() == server.url + "/"
