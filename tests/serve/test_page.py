"""The web page in headless Chromium (Debian's `chromium`, driven by playwright): a streamed answer appears,
model text that looks like HTML stays text, a tool call is drawn apart, Stop cancels, New chat clears, Enter
sends and Shift+Enter makes a new line, and nothing is fetched from outside.

The server runs the scripted model (conftest.py): every reply is `<script>`, a calculator call 6*7 whose
result the server forces, then " la la la …" until max_tokens."""

from __future__ import annotations

import os
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")

from tests.serve.conftest import Server, scripted_model, save_model  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.geteuid() != 0,
    reason="no chromium here and not root to install it (.ci/run installs Debian's chromium when root)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve-page")
    # 8 layers and a 4,096-token context: the stop test's reply of 4,000 tokens takes ~23 s to generate (2-core
    # AVX512-BF16 EPYC, 2026-12-03), so it is still streaming when the test presses Stop. With 1 layer and 2,000
    # tokens it took 0.6 s, and under CI load the reply could end before the button was checked.
    model, tok = scripted_model(seq_len=4096, n_layer=8)
    save_model(home, model, tok)
    s = Server(home)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("chromium is missing: install Debian's `chromium` package (.ci/run does it when root)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    pg = context.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    pg.on("request", lambda r: None if r.url.startswith(server.url) else pg.problems.append(f"outside: {r.url}"))
    pg.goto(server.url + "/")
    sync_api.expect(pg.locator("#model")).to_contain_text("nanochat/serve-test/sft/step5")
    yield pg
    context.close()


def _send(page, text: str, max_tokens: int) -> None:
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#input", text)
    page.press("#input", "Enter")


def test_a_streamed_reply_appears_as_text_with_the_tool_call_drawn_apart(page, server):
    sent = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/chat/completions") else None)
    page.fill("#temperature", "0")
    page.fill("#top-k", "7")
    _send(page, "Hello <b>there</b>", 60)
    reply = page.locator(".msg.assistant").last
    sync_api.expect(reply).to_contain_text("la la", timeout=30_000)
    sync_api.expect(page.locator("#send")).to_have_text("Send", timeout=30_000)  # done streaming
    body = reply.locator(".body")
    assert body.inner_text().startswith("<script>")  # the model's "<script>" is shown, not parsed
    assert page.locator("#messages script").count() == 0 and page.locator("#messages b").count() == 0
    assert page.locator(".msg.user").last.inner_text() == "Hello <b>there</b>"
    assert reply.locator(".tool-call").inner_text() == "6*7"
    assert reply.locator(".tool-result").inner_text() == "42"
    assert "stopped at the token limit" in reply.inner_text() and "60 tokens" in reply.inner_text()
    assert sent[-1]["temperature"] == 0 and sent[-1]["top_k"] == 7 and sent[-1]["max_tokens"] == 60
    assert sent[-1]["stream"] is True and sent[-1]["messages"] == [{"role": "user", "content": "Hello <b>there</b>"}]
    assert page.problems == []


def test_stop_cancels_the_reply_and_new_chat_clears(page, server):
    _send(page, "sing", 4000)
    reply = page.locator(".msg.assistant").last
    sync_api.expect(reply).to_contain_text("la la la", timeout=30_000)
    sync_api.expect(page.locator("#send")).to_have_text("Stop")
    page.click("#send")
    sync_api.expect(page.locator("#send")).to_have_text("Send")
    sync_api.expect(reply).to_contain_text("stopped")
    # the server let go of the reply (the page closed its stream)
    import json
    import urllib.request

    for _ in range(300):
        if json.loads(urllib.request.urlopen(server.url + "/health").read())["active"] == 0:
            break
        page.wait_for_timeout(10)
    assert json.loads(urllib.request.urlopen(server.url + "/health").read())["active"] == 0
    # the stopped reply stays in the conversation: a second message is answered with both turns as context
    _send(page, "again", 20)
    sync_api.expect(page.locator(".msg.assistant")).to_have_count(2)
    sync_api.expect(page.locator("#send")).to_have_text("Send", timeout=30_000)
    page.click("#new-chat")
    sync_api.expect(page.locator(".msg")).to_have_count(0)
    assert page.problems == []


def test_shift_enter_makes_a_new_line_and_enter_sends(page):
    page.fill("#max-tokens", "5")
    page.click("#input")
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    assert page.input_value("#input") == "line one\nline two"
    assert page.locator(".msg").count() == 0
    page.keyboard.press("Enter")
    sync_api.expect(page.locator(".msg.user")).to_have_text("line one\nline two")
    sync_api.expect(page.locator("#send")).to_have_text("Send", timeout=30_000)
    assert page.input_value("#input") == ""
