"""OpenAI's wire format: validate a request into prompt ids + sampling settings, and shape responses.

Exactly what the official `openai` client (3.x) sends and parses (docs/reference/serve-api.md lists every
field). Every problem with a request is an `ApiError` carrying OpenAI's error object and the HTTP status:
400 for anything malformed or out of range, 404 for another model, 413 for a body over the limit. Fields that
ask for something this server cannot do (logprobs, function tools, penalties) are refused by name rather than
ignored; fields that change nothing here (`user`, `metadata`, `store`) are accepted.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from nanochat_cli.serve.scheduler import Sampling
from nanochat_cli.serve.text import assistant_content

MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 200
ROLES = ("system", "developer", "user", "assistant")  # "developer" is OpenAI's newer name for "system"


class ApiError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class Limits:
    """What the served model and the server's settings allow, and the defaults for omitted fields."""

    model_id: str
    phase: str
    capacity: int  # the model's context in tokens
    vocab_size: int
    max_batch: int
    max_tokens: int  # the most a request may ask for (serve.max_tokens)
    default_max_tokens: int  # chat.max_tokens
    default_temperature: float  # chat.temperature
    default_top_k: int  # chat.top_k


@dataclass
class Prepared:
    """A validated request: one prompt per choice group (chat: one; completions: one per prompt)."""

    prompts: list[list[int]]
    sampling: Sampling
    n: int
    stream: bool
    include_usage: bool
    prompt_text: str = ""  # for --log-prompts only
    extras: dict = field(default_factory=dict)


def parse_json(raw: bytes) -> Any:
    def refuse_constant(name: str):
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(raw, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, f"the request body is not valid JSON ({' '.join(str(e).split())[:200]})",
                       code="invalid_json") from None


# --- field checks ---------------------------------------------------------------------------------------

def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(body: dict, name: str, lo: int, hi: int, default: int | None) -> int | None:
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not _is_int(v):
        raise ApiError(400, f"{name} must be an integer, got {json.dumps(v)[:40]}", param=name, code="invalid_type")
    if not lo <= v <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}, got {v}", param=name, code="invalid_value")
    return v


def _number(body: dict, name: str, lo: float, hi: float, default: float, lo_open: bool = False) -> float:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise ApiError(400, f"{name} must be a number, got {json.dumps(v)[:40]}", param=name, code="invalid_type")
    if v > hi or v < lo or (lo_open and v == lo):
        bound = f"greater than {lo}" if lo_open else f"at least {lo}"
        raise ApiError(400, f"{name} must be {bound} and at most {hi}, got {v}", param=name, code="invalid_value")
    return float(v)


def _bool(body: dict, name: str, default: bool = False) -> bool:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise ApiError(400, f"{name} must be true or false, got {json.dumps(v)[:40]}", param=name,
                       code="invalid_type")
    return v


def _clean(text: str) -> str:
    """JSON can carry lone surrogates (\\ud800), which no tokenizer encodes: they become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _refuse_unsupported(body: dict) -> None:
    """Fields whose meaning this server cannot honour: refused by name (a silent ignore would mislead)."""
    checks = [
        ("tools", lambda v: bool(v), "function tools are not supported (the model calls its own calculator)"),
        ("functions", lambda v: bool(v), "functions are not supported"),
        ("tool_choice", lambda v: v not in (None, "none", "auto"), "tool_choice is not supported"),
        ("logprobs", lambda v: v not in (None, False), "logprobs are not supported"),
        ("top_logprobs", lambda v: v not in (None, 0), "top_logprobs are not supported"),
        ("logit_bias", lambda v: bool(v), "logit_bias is not supported"),
        ("presence_penalty", lambda v: v not in (None, 0, 0.0), "presence_penalty is not supported (use 0)"),
        ("frequency_penalty", lambda v: v not in (None, 0, 0.0), "frequency_penalty is not supported (use 0)"),
        ("response_format", lambda v: v not in (None, {"type": "text"}), "only response_format {\"type\": \"text\"} "
                                                                          "is supported"),
        ("echo", lambda v: v not in (None, False), "echo is not supported"),
        ("suffix", lambda v: v not in (None, ""), "suffix is not supported"),
        ("best_of", lambda v: v not in (None, 1), "best_of is not supported (use n)"),
        ("audio", lambda v: v is not None, "audio output is not supported"),
    ]
    for name, bad, message in checks:
        if name in body and bad(body[name]):
            raise ApiError(400, message, param=name, code="unsupported_parameter")


def check_model(body: dict, limits: Limits) -> None:
    """`model` may be left out or name the served model (its id, or just its phase); another name is 404."""
    name = body.get("model")
    if name is None:
        return
    if not isinstance(name, str):
        raise ApiError(400, "model must be a string", param="model", code="invalid_type")
    if name not in (limits.model_id, limits.phase):
        raise ApiError(404, f"the model '{name[:100]}' does not exist; this server serves '{limits.model_id}'",
                       param="model", code="model_not_found")


def _sampling(body: dict, limits: Limits, prompt_len_max: int) -> tuple[Sampling, int]:
    max_tokens = _int(body, "max_tokens", 1, limits.max_tokens, None)
    max_tokens = _int(body, "max_completion_tokens", 1, limits.max_tokens, max_tokens)
    temperature = _number(body, "temperature", 0.0, 2.0, limits.default_temperature)
    if 0 < temperature < 0.001:
        raise ApiError(400, f"temperature {temperature} is too small to sample with; use 0 for greedy decoding or "
                            "at least 0.001", param="temperature", code="invalid_value")
    top_p = _number(body, "top_p", 0.0, 1.0, 1.0, lo_open=True)
    top_k = _int(body, "top_k", 0, limits.vocab_size, limits.default_top_k)
    n = _int(body, "n", 1, limits.max_batch, 1)
    seed = body.get("seed")
    if seed is not None and not (_is_int(seed) and -2 ** 63 <= seed < 2 ** 64):
        raise ApiError(400, "seed must be an integer", param="seed", code="invalid_type")
    stop = body.get("stop")
    if stop is None:
        stops = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = stop
    else:
        raise ApiError(400, "stop must be a string or a list of strings", param="stop", code="invalid_type")
    if len(stops) > MAX_STOP_STRINGS or any(not s or len(s) > MAX_STOP_CHARS for s in stops):
        raise ApiError(400, f"stop takes at most {MAX_STOP_STRINGS} non-empty strings of at most {MAX_STOP_CHARS} "
                            "characters", param="stop", code="invalid_value")
    room = limits.capacity - prompt_len_max
    if max_tokens is None:  # the server's default, cut to what the context leaves
        max_tokens = min(limits.default_max_tokens, room)
    sampling = Sampling(max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                        stop=[_clean(s) for s in stops], ignore_eos=_bool(body, "ignore_eos"))
    return sampling, n


def _stream(body: dict) -> tuple[bool, bool]:
    stream = _bool(body, "stream")
    opts = body.get("stream_options")
    if opts is None:
        return stream, False
    if not isinstance(opts, dict):
        raise ApiError(400, "stream_options must be an object", param="stream_options", code="invalid_type")
    if not stream:
        raise ApiError(400, "stream_options is only allowed with stream: true", param="stream_options",
                       code="invalid_value")
    return stream, _bool(opts, "include_usage")


def _fits(ids: list[int], limits: Limits, what: str) -> None:
    if len(ids) >= limits.capacity:
        raise ApiError(400, f"the {what} is {len(ids)} tokens; this model's context is {limits.capacity} tokens and "
                            "at least one must be left for the reply", param="messages" if what == "conversation"
                       else "prompt", code="context_length_exceeded")


# --- requests -------------------------------------------------------------------------------------------

def _message_text(m: dict, i: int) -> str:
    content = m.get("content")
    if isinstance(content, str):
        return _clean(content)
    if isinstance(content, list):  # content parts: only text ones
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"messages[{i}].content[{j}]: only text parts ({{\"type\": \"text\", \"text\": "
                                    "...}) are supported", param=f"messages[{i}].content", code="invalid_value")
            texts.append(part["text"])
        return _clean("".join(texts))
    raise ApiError(400, f"messages[{i}].content must be a string or a list of text parts",
                   param=f"messages[{i}].content", code="invalid_type")


def prepare_chat(body: Any, tokenizer, limits: Limits) -> Prepared:
    from nanochat_cli.tokenizer.chat import render_for_completion

    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    check_model(body, limits)
    if limits.phase == "base":
        raise ApiError(400, "this server serves a base model, which was not trained on conversations: use "
                            "POST /v1/completions (plain continuation), or serve a chat model with -i sft",
                       code="unsupported_for_base_model")
    _refuse_unsupported(body)
    messages = body.get("messages")
    if messages is None:
        raise ApiError(400, "messages is required", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages", code="invalid_value")
    conversation = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ApiError(400, f"messages[{i}] must be an object with role and content", param=f"messages[{i}]",
                           code="invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise ApiError(400, f"messages[{i}].role {json.dumps(role)[:40]} is not supported; use system, user or "
                                "assistant", param=f"messages[{i}].role", code="invalid_value")
        if m.get("tool_calls"):
            raise ApiError(400, f"messages[{i}].tool_calls: function tool calls are not supported",
                           param=f"messages[{i}].tool_calls", code="unsupported_parameter")
        text = _message_text(m, i)
        role = "system" if role == "developer" else role
        content = assistant_content(text) if role == "assistant" else text
        conversation.append({"role": role, "content": content})
    if conversation[-1]["role"] != "user":
        raise ApiError(400, "the last message must be from the user", param="messages", code="invalid_value")
    try:
        ids = render_for_completion(tokenizer, {"messages": conversation})
    except ValueError as e:  # roles out of order, a system message that is not first, ...
        raise ApiError(400, str(e), param="messages", code="invalid_value") from None
    _fits(ids, limits, "conversation")
    stream, include_usage = _stream(body)
    sampling, n = _sampling(body, limits, len(ids))
    return Prepared([ids], sampling, n, stream, include_usage, prompt_text=json.dumps(messages)[:2000])


def prepare_completion(body: Any, tokenizer, limits: Limits) -> Prepared:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    check_model(body, limits)
    _refuse_unsupported(body)
    prompt = body.get("prompt")
    if prompt is None:
        raise ApiError(400, "prompt is required", param="prompt", code="missing_required_parameter")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ApiError(400, "prompt must be a string or a non-empty list of strings", param="prompt",
                       code="invalid_type")
    ids = [tokenizer.encode(_clean(p), prepend=tokenizer.bos_id) for p in prompts]
    for one in ids:
        _fits(one, limits, "prompt")
    stream, include_usage = _stream(body)
    sampling, n = _sampling(body, limits, max(len(i) for i in ids))
    if n * len(ids) > limits.max_batch:
        raise ApiError(400, f"{len(ids)} prompts x n={n} is more samples than this server decodes at once "
                            f"({limits.max_batch})", param="n", code="invalid_value")
    return Prepared(ids, sampling, n, stream, include_usage, prompt_text=json.dumps(prompts)[:2000])


# --- responses ------------------------------------------------------------------------------------------

def new_id(kind: str) -> str:
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def response(kind: str, rid: str, model_id: str, choices: list[tuple[int, str, str]], use: dict) -> dict:
    """choices: (index, text, finish_reason)."""
    created = int(time.time())
    if kind == "chat":
        return {"id": rid, "object": "chat.completion", "created": created, "model": model_id,
                "system_fingerprint": None,
                "choices": [{"index": i, "message": {"role": "assistant", "content": text, "refusal": None},
                             "logprobs": None, "finish_reason": reason} for i, text, reason in choices],
                "usage": use}
    return {"id": rid, "object": "text_completion", "created": created, "model": model_id,
            "system_fingerprint": None,
            "choices": [{"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                        for i, text, reason in choices],
            "usage": use}


def chunk(kind: str, rid: str, created: int, model_id: str, index: int, text: str | None,
          finish_reason: str | None = None, first: bool = False, with_usage: bool = False) -> dict:
    """One streamed piece of one choice (chat: a `delta`; completions: `text`)."""
    if kind == "chat":
        delta: dict = {}
        if first:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        out = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model_id,
               "system_fingerprint": None, "choices": [choice]}
    else:
        out = {"id": rid, "object": "text_completion", "created": created, "model": model_id,
               "system_fingerprint": None,
               "choices": [{"index": index, "text": text or "", "logprobs": None, "finish_reason": finish_reason}]}
    if with_usage:
        out["usage"] = None
    return out


def usage_chunk(kind: str, rid: str, created: int, model_id: str, use: dict) -> dict:
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": model_id, "system_fingerprint": None,
            "choices": [], "usage": use}
