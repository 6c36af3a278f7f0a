"""The chat page at GET /, driven in headless Chromium against the real server with the tiny model."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.repo import REPO_ROOT
from tests.helpers.serving import MODEL_TYPE, start_server

ARTIFACTS = os.path.join(REPO_ROOT, "test-artifacts")

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    process = start_server(tiny_model_dir, tmp_path_factory.mktemp("chat_page"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    page.goto(server.base_url + "/")
    page.wait_for_selector("#model:has-text('model: " + MODEL_TYPE + "')", timeout=15000)
    yield page
    page.close()


def greedy_answer(server, messages, max_tokens):
    request = urllib.request.Request(
        server.base_url + "/v1/chat/completions",
        method="POST",
        headers={"Content-Type": "application/json"},
        data=json.dumps(
            {"model": MODEL_TYPE, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
        ).encode(),
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"]


def ask(page, text):
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def test_answer_streams_in_with_the_chosen_settings(page, server):
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "12")
    with page.expect_request("**/v1/chat/completions") as request_info:
        ask(page, "Tell me about the history of tea.")
    body = request_info.value.post_data_json
    assert body["temperature"] == 0 and body["max_tokens"] == 12 and body["stream"] is True
    page.wait_for_selector(".assistant .meta", timeout=15000)
    answer = page.inner_text(".assistant .text")
    assert answer == greedy_answer(server, [{"role": "user", "content": "Tell me about the history of tea."}], 12)
    assert "finish: length" in page.inner_text(".assistant .meta")
    assert page.inner_text(".user .text") == "Tell me about the history of tea."


def test_conversation_is_kept_between_turns(page, server):
    page.fill("#temperature", "0")
    page.fill("#max-tokens", "8")
    ask(page, "Hi")
    page.wait_for_selector(".assistant .meta", timeout=15000)
    first_answer = page.inner_text(".assistant .text")
    with page.expect_request("**/v1/chat/completions") as request_info:
        ask(page, "And then?")
    page.wait_for_selector(".assistant:nth-of-type(4) .meta", timeout=15000)
    messages = request_info.value.post_data_json["messages"]
    assert messages == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": "And then?"},
    ]
    assert page.locator(".message").count() == 4
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "chat_page.png"), full_page=True)


def test_stop_button_ends_a_long_answer_midway(page):
    page.fill("#temperature", "0")  # greedy: the long answer does not draw <|end_of_turn|> early by chance
    page.fill("#max-tokens", "1900")
    # Checked and clicked in one step inside the page: a click that waits for Stop to be actionable can land after
    # the answer ended, or wait out a busy machine while the answer keeps streaming. Should a whole answer still
    # arrive before the first text can be seen, ask again.
    outcomes = []
    for _attempt in range(3):
        ask(page, "Write a very long story")
        answer = page.locator(".assistant").last
        page.wait_for_function(
            "[...document.querySelectorAll('.assistant')].pop().querySelector('.text').textContent.length > 0",
            timeout=15000,
        )
        clicked = page.evaluate(
            "() => { const stop = document.querySelector('#stop'); if (stop.disabled) return false;"
            " stop.click(); return true; }"
        )
        page.wait_for_function(  # the answer ends with a finish line, or as an error
            "() => { const a = [...document.querySelectorAll('.assistant')].pop();"
            " return a.querySelector('.meta') || a.classList.contains('error'); }",
            timeout=60000,
        )
        if "error" in (answer.get_attribute("class") or ""):
            outcomes.append(answer.locator(".text").inner_text())
            continue
        outcomes.append(answer.locator(".meta").inner_text())
        if clicked:
            assert "finish: stopped" in outcomes[-1]
            assert answer.locator(".text").inner_text()  # stopped midway, with what had arrived
            assert page.is_enabled("#send")
            return
    pytest.fail(f"three long answers ended before the stop button could end one: {outcomes}")


def test_server_error_is_shown_in_the_conversation(page):
    page.fill("#max-tokens", "0")
    ask(page, "hello")
    page.wait_for_selector(".assistant.error", timeout=15000)
    assert "max_tokens" in page.inner_text(".assistant.error")
