"""`nanochat serve` answered by the official `openai` client: shapes, usage, streaming, n, batching, errors.

One real server per module (random GQA model, context 256) on a free port of 127.0.0.1."""

from __future__ import annotations

import concurrent.futures as cf
import http.client
import json

import pytest

openai = pytest.importorskip("openai", reason="the dev extra installs the openai client")

from nanochat_cli.tokenizer.chat import render_for_completion  # noqa: E402

MSG = [{"role": "user", "content": "What is 2 plus 3?"}]


@pytest.fixture(scope="module")
def server(random_server):
    return random_server


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=120, max_retries=0)


def _raw(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def _model_id(client) -> str:
    return client.models.list().data[0].id


def test_models_list_names_run_phase_and_step(client, server):
    models = client.models.list()
    assert len(models.data) == 1
    m = models.data[0]
    assert m.id == "nanochat/serve-test/sft/step5" and m.object == "model" and m.owned_by == "nanochat"
    assert isinstance(m.created, int)
    assert client.models.retrieve(m.id).id == m.id
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_completion_shape_and_usage_counts(client, server):
    raw = client.chat.completions.with_raw_response.create(model=_model_id(client), messages=MSG, temperature=0,
                                                           max_tokens=16)
    body = raw.http_response.json()
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage"}
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["finish_reason"] in ("stop", "length")
    use = body["usage"]
    assert use["prompt_tokens"] == len(render_for_completion(server.tokenizer, {"messages": MSG}))
    assert 1 <= use["completion_tokens"] <= 16
    assert use["total_tokens"] == use["prompt_tokens"] + use["completion_tokens"]
    r = raw.parse()
    assert r.choices[0].message.content == choice["message"]["content"]


def test_max_tokens_is_honoured_and_counted(client):
    for field in ("max_tokens", "max_completion_tokens"):
        r = client.chat.completions.create(model=_model_id(client), messages=MSG, temperature=0.7, seed=1,
                                           extra_body={"ignore_eos": True}, **{field: 5})
        assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5


def test_stream_equals_non_stream_with_usage(client, server):
    mid = _model_id(client)
    kw = dict(model=mid, messages=MSG, temperature=0, max_tokens=24)
    whole = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    # the raw stream ends with [DONE]
    status, headers, data = _raw(server, "POST", "/v1/chat/completions",
                                 json.dumps({**kw, "stream": True}).encode(), {"Content-Type": "application/json"})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert data.decode().rstrip().endswith("data: [DONE]")


def test_n_samples_share_the_prompt_and_a_seed_repeats_them(client):
    kw = dict(model=_model_id(client), messages=MSG, temperature=1.0, max_tokens=10, n=2, seed=11,
              extra_body={"top_k": 40, "ignore_eos": True})
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    assert [c.index for c in a.choices] == [0, 1]
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert a.usage.completion_tokens == 20
    streamed = list(client.chat.completions.create(**kw, stream=True))
    by_index = {0: "", 1: ""}
    for c in streamed:
        for ch in c.choices:
            by_index[ch.index] += ch.delta.content or ""
    assert [by_index[0], by_index[1]] == [c.message.content for c in a.choices]


def test_eight_concurrent_requests_each_equal_their_solo_answer(client, server):
    mid = _model_id(client)
    prompts = [f"Tell me about the number {i}." for i in range(8)]

    def ask(p):
        return client.chat.completions.create(model=mid, messages=[{"role": "user", "content": p}], temperature=0,
                                              max_tokens=24).choices[0].message.content

    solo = [ask(p) for p in prompts]
    with cf.ThreadPoolExecutor(8) as ex:
        together = list(ex.map(ask, prompts))
    assert together == solo
    assert len(set(solo)) > 1


def test_completions_endpoint_continues_text(client):
    r = client.completions.create(model=_model_id(client), prompt=["Once upon", "The sky"], max_tokens=6,
                                  temperature=0, extra_body={"ignore_eos": True})
    assert r.object == "text_completion" and [c.index for c in r.choices] == [0, 1]
    assert all(c.finish_reason == "length" for c in r.choices) and r.usage.completion_tokens == 12
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=_model_id(client), prompt="Once upon", max_tokens=6, temperature=0, stream=True,
        extra_body={"ignore_eos": True}) if c.choices)
    assert streamed == r.choices[0].text


def test_empty_messages_is_a_bad_request_for_the_client(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=_model_id(client), messages=[], max_tokens=4)
    assert e.value.body["code"] == "invalid_value" and e.value.body["param"] == "messages"


def _chat(**fields) -> bytes:
    return json.dumps({"messages": MSG, **fields}).encode()


ERRORS = [
    ("malformed JSON", b"{not json", 400, None),
    ("NaN is not JSON", b'{"messages": [], "temperature": NaN}', 400, None),
    ("not an object", b"[1, 2]", 400, None),
    ("missing messages", b"{}", 400, "messages"),
    ("empty messages", json.dumps({"messages": []}).encode(), 400, "messages"),
    ("unknown role", json.dumps({"messages": [{"role": "tool", "content": "x"}]}).encode(), 400, "messages[0].role"),
    ("content not text", json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), 400,
     "messages[0].content"),
    ("image part", json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}).encode(), 400,
     "messages[0].content"),
    ("roles out of order", json.dumps({"messages": MSG + MSG}).encode(), 400, "messages"),
    ("ends with assistant", json.dumps({"messages": MSG + [{"role": "assistant", "content": "hi"}]}).encode(), 400,
     "messages"),
    ("max_tokens 0", _chat(max_tokens=0), 400, "max_tokens"),
    ("max_tokens huge", _chat(max_tokens=10 ** 9), 400, "max_tokens"),
    ("max_tokens text", _chat(max_tokens="8"), 400, "max_tokens"),
    ("temperature negative", _chat(temperature=-0.1), 400, "temperature"),
    ("temperature 3", _chat(temperature=3), 400, "temperature"),
    ("temperature tiny", _chat(temperature=1e-6), 400, "temperature"),
    ("top_k negative", _chat(top_k=-1), 400, "top_k"),
    ("top_k above vocab", _chat(top_k=10 ** 6), 400, "top_k"),
    ("top_p 0", _chat(top_p=0), 400, "top_p"),
    ("n 0", _chat(n=0), 400, "n"),
    ("n above max batch", _chat(n=9), 400, "n"),
    ("five stops", _chat(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    ("stream_options without stream", _chat(stream_options={"include_usage": True}), 400, "stream_options"),
    ("logprobs", _chat(logprobs=True), 400, "logprobs"),
    ("function tools", _chat(tools=[{"type": "function", "function": {"name": "f"}}]), 400, "tools"),
    ("prompt longer than context", json.dumps({"messages": [{"role": "user", "content": "x" * 300}]}).encode(),
     400, "messages"),
    ("unknown model", _chat(model="gpt-4o"), 404, "model"),
    ("oversized body", json.dumps({"messages": [{"role": "user", "content": "x" * (1 << 20)}]}).encode(), 413, None),
    ("not UTF-8", b'{"messages": [{"role": "user", "content": "\xff"}]}', 400, None),
    ("nested too deep", b"[" * 100_000 + b"]" * 100_000, 400, None),
]


@pytest.mark.parametrize("name,body,status,param", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_gets_an_openai_error_with_the_right_status(server, name, body, status, param):
    code, headers, data = _raw(server, "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    assert code == status, data
    err = json.loads(data)["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"] and err["type"]
    assert err["param"] == param
    assert b"Traceback" not in data


def test_an_oversized_chunked_body_is_413_as_it_arrives(server):
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    pieces = (b"x" * 65536 for _ in range(40))  # 2.5 MiB without a Content-Length
    conn.request("POST", "/v1/chat/completions", body=pieces, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 413 and json.loads(r.read())["error"]["code"] == "request_too_large"


def test_lone_surrogates_in_json_are_replaced_not_a_crash(server):
    body = b'{"messages": [{"role": "user", "content": "hi \\ud800 there"}], "max_tokens": 2}'
    status, _, data = _raw(server, "POST", "/v1/chat/completions", body)
    assert status == 200, data


def test_context_errors_say_so_and_unknown_paths_and_methods_are_openai_shaped(server):
    _, _, data = _raw(server, "POST", "/v1/chat/completions",
                      json.dumps({"messages": [{"role": "user", "content": "x" * 300}]}).encode())
    assert json.loads(data)["error"]["code"] == "context_length_exceeded"
    for method, path, status in (("GET", "/v1/nothing", 404), ("GET", "/v1/chat/completions", 405),
                                 ("DELETE", "/v1/models", 405)):
        code, _, data = _raw(server, method, path)
        assert code == status and set(json.loads(data)["error"]) == {"message", "type", "param", "code"}


def test_server_keeps_serving_after_bad_input_and_logs_without_prompts(server, client):
    status, _, data = _raw(server, "GET", "/health")
    assert status == 200 and json.loads(data)["status"] == "ok"
    assert client.chat.completions.create(model=_model_id(client), messages=MSG, max_tokens=2).choices
    lines = server.log_lines()
    assert any(" POST /v1/chat/completions 200 tokens " in line and line.endswith(" ms") for line in lines)
    assert any(" POST /v1/chat/completions 400 " in line for line in lines)
    assert not any("What is 2 plus 3" in line for line in lines)  # no prompt text without --log-prompts
    assert not any("Traceback" in line for line in lines)


def test_the_page_is_served_self_contained(server):
    status, headers, data = _raw(server, "GET", "/")
    html = data.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "<script>" in html and '<link rel="icon" href="data:,">' in html
    assert "http://" not in html and "https://" not in html  # no CDN: works offline
    assert "script-src 'sha256-" in headers["content-security-policy"]
