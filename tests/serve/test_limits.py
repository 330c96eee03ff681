"""The guards: API key, full queue (429 + Retry-After), a client that leaves, /health during a reply, timeout.

One server: a random model with a 4096-token context (replies long enough to hold slots while a test looks),
--max-batch 2 --max-queue 0 --api-key --timeout 1."""

from __future__ import annotations

import http.client
import json
import re
import time

import pytest

openai = pytest.importorskip("openai", reason="the dev extra installs the openai client")

from tests.serve.conftest import Server, random_model, save_model  # noqa: E402

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
LONG = {"messages": [{"role": "user", "content": "go on"}], "max_tokens": 4000, "ignore_eos": True,
        "temperature": 0, "stream": True}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve-limits")
    model, tok = random_model(seq_len=4096)
    save_model(home, model, tok)
    s = Server(home, "--max-batch", "2", "--max-queue", "0", "--timeout", "1", "--api-key", KEY)
    yield s
    s.stop()


def _conn(server) -> http.client.HTTPConnection:
    host, port = server.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=60)


def _request(server, method, path, body=None, headers=None):
    c = _conn(server)
    c.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


class _Stream:
    """A streamed request held open: the first event has been read, the rest is left unread."""

    def __init__(self, server):
        self.conn = _conn(server)
        self.conn.request("POST", "/v1/chat/completions", body=json.dumps(LONG).encode(), headers=AUTH)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        self.first = self.resp.read(6)  # chunk-aware (the body is chunked)
        assert self.first.startswith(b"data: ")

    def close(self):
        self.conn.sock.close()
        self.conn.close()


def _health(server) -> dict:
    return json.loads(_request(server, "GET", "/health")[2])


def _wait_idle(server) -> dict:
    """Poll /health until no reply is in progress (a closed connection is noticed within milliseconds)."""
    for _ in range(500):
        h = _health(server)
        if h["active"] == 0 and h["queued"] == 0:
            return h
        time.sleep(0.01)
    return h


def test_api_key_is_required_on_the_api_but_not_on_the_page_or_health(server):
    wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        wrong.models.list()
    assert e.value.body["code"] == "invalid_api_key"
    status, headers, data = _request(server, "POST", "/v1/chat/completions", {"messages": []})
    assert status == 401 and headers.get("www-authenticate") == "Bearer" and "missing API key" in data.decode()
    right = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    assert right.chat.completions.create(model="sft", messages=[{"role": "user", "content": "hi"}],
                                         max_tokens=2).choices
    assert _request(server, "GET", "/health")[0] == 200 and _request(server, "GET", "/")[0] == 200


def test_health_answers_while_replies_are_generated_and_a_full_server_says_429(server):
    a, b = _Stream(server), _Stream(server)  # both slots busy (each reply wants 4000 tokens)
    try:
        h = _health(server)  # the event loop is not blocked by decoding
        assert h["active"] == 2 and h["max_batch"] == 2
        status, headers, data = _request(server, "POST", "/v1/chat/completions",
                                         {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}, AUTH)
        assert status == 429 and headers.get("retry-after", "").isdigit()
        assert json.loads(data)["error"]["code"] == "queue_full"
    finally:
        a.close()
        b.close()
    assert _wait_idle(server)["active"] == 0


def test_a_client_that_leaves_mid_stream_frees_its_slot(server):
    s = _Stream(server)
    s.close()
    assert _wait_idle(server)["active"] == 0
    lines = server.log_lines()
    left = [line for line in lines if "(client left)" in line]
    assert left, lines[-5:]
    generated = int(re.search(r"tokens \d+\+(\d+)", left[-1]).group(1))
    assert generated < 4000  # it stopped when the client left, long before the reply's end
    assert _health(server)["active"] == 0
    ok = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    assert ok.chat.completions.create(model="sft", messages=[{"role": "user", "content": "hi"}], max_tokens=2)


def test_a_client_that_leaves_before_a_non_streamed_reply_stops_it(server):
    body = {"messages": [{"role": "user", "content": "non-streamed"}], "max_tokens": 4000, "ignore_eos": True}
    c = _conn(server)
    c.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(), headers=AUTH)
    for _ in range(500):  # until it is being decoded
        if _health(server)["active"]:
            break
        time.sleep(0.005)
    c.sock.close()
    assert _wait_idle(server)["active"] == 0
    # noticed as a disconnect (499, "client left"), not by the 1 s timeout (504)
    assert any("(client left)" in line and " 499 " in line for line in server.log_lines())


def test_a_reply_over_the_timeout_is_cancelled_with_504(server):
    body = {"messages": [{"role": "user", "content": "go on"}], "max_tokens": 4000, "ignore_eos": True}
    status, _, data = _request(server, "POST", "/v1/chat/completions", body, AUTH)
    assert status == 504 and json.loads(data)["error"]["code"] == "request_timeout"
    c = _conn(server)  # streamed: an error event, then [DONE]
    c.request("POST", "/v1/chat/completions", body=json.dumps(LONG).encode(), headers=AUTH)
    text = c.getresponse().read().decode()
    events = [e for e in text.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and json.loads(events[-2][6:])["error"]["code"] == "request_timeout"
    assert _wait_idle(server)["active"] == 0  # the cancelled reply's slot is free again
