"""Serving a conditioned (C-RLFT) model: the request's `condition`, the server default, and the chat page.

The real server runs with the tiny openchat_v3.2 model; what it renders is checked against the registry's
renderer by the prompt's token count and by greedy answers equal to plain transformers on that prompt.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import openai
import pytest
import torch

from ochat.config import get_model_config, load_tokenizer, render_conversation
from ochat.models import load_model
from ochat.utils.net import free_port
from ochat.utils.server_process import ServerProcess
from tests.helpers.browser import CHROMIUM

CRLFT_TYPE = "openchat_v3.2_tiny"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
ITEMS = [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Name a colour."}]
MAX_TOKENS = 8


def _launch(model_type: str, model_dir: str, work_dir, *extra_args: str) -> ServerProcess:
    port = free_port()
    return ServerProcess.launch(
        model_type,
        model_dir,
        "--ray_num_cpus",
        "2",
        *extra_args,
        port=port,
        log_path=os.path.join(str(work_dir), f"server-{port}.out"),
    )


@pytest.fixture(scope="module")
def servers(tiny_crlft_model_dir, tiny_model_dir, tmp_path_factory):
    """A conditioned server, one whose default is GPT3, and an unconditioned one, started side by side."""
    work_dir = tmp_path_factory.mktemp("crlft_serving")
    launched = {
        "default": _launch(CRLFT_TYPE, tiny_crlft_model_dir, work_dir),
        "gpt3": _launch(CRLFT_TYPE, tiny_crlft_model_dir, work_dir, "--condition", "GPT3"),
        "plain": _launch("openchat_tiny", tiny_model_dir, work_dir),
    }
    try:
        for process in launched.values():
            process.wait_healthy(timeout=240)
        yield launched
    finally:
        ServerProcess.stop_all(launched.values())


@pytest.fixture(scope="module")
def reference(tiny_crlft_model_dir):
    """Prompt ids from the registry's renderer and greedy answers of plain transformers on them."""
    config = get_model_config(CRLFT_TYPE)
    tokenizer = load_tokenizer(config, tiny_crlft_model_dir)
    model = load_model(config, tiny_crlft_model_dir).eval()

    def prompt(condition, items=ITEMS):
        return render_conversation(config, tokenizer, items, add_generation_prompt=True, condition=condition).token_ids

    def greedy(condition, items=ITEMS):
        ids = prompt(condition, items)
        with torch.inference_mode():
            output = model.generate(
                torch.tensor([ids]),
                max_new_tokens=MAX_TOKENS,
                do_sample=False,
                eos_token_id=tokenizer.stop_token_ids,
                pad_token_id=tokenizer.hf_tokenizer.pad_token_id,
            )
        return tokenizer.decode(output[0, len(ids) :].tolist(), skip_special_tokens=True)

    return prompt, greedy


def _ask(server: ServerProcess, model: str, **extra):
    client = openai.OpenAI(base_url=server.api_base, api_key="unused")
    return client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0, extra_body=extra or None
    )


def test_request_condition_is_rendered_into_the_prompt(servers, reference):
    prompt, greedy = reference
    assert greedy("GPT3") != greedy("GPT4")  # the check below can tell the conditions apart
    for condition in ("GPT3", "GPT4", "GPT4 Correct"):
        answer = _ask(servers["default"], CRLFT_TYPE, condition=condition)
        assert answer.usage.prompt_tokens == len(prompt(condition))
        assert answer.choices[0].message.content == greedy(condition)
    assert len(prompt("GPT4 Correct")) > len(prompt("GPT4"))


def test_default_is_the_inference_condition_and_the_server_flag_changes_it(servers, reference):
    prompt, greedy = reference
    assert _ask(servers["default"], CRLFT_TYPE).choices[0].message.content == greedy("GPT4")
    assert _ask(servers["gpt3"], CRLFT_TYPE).choices[0].message.content == greedy("GPT3")
    assert _ask(servers["gpt3"], CRLFT_TYPE, condition="GPT4").choices[0].message.content == greedy("GPT4")
    cards = [json.load(urllib.request.urlopen(s.api_base + "/models"))["data"][0] for s in servers.values()]
    assert [card.get("condition") for card in cards] == ["GPT4", "GPT3", None]


def test_unconditioned_type_rejects_a_condition_with_400(servers):
    with pytest.raises(openai.BadRequestError) as caught:
        _ask(servers["plain"], "openchat_tiny", condition="GPT4")
    assert caught.value.status_code == 400 and caught.value.body["param"] == "condition"
    assert "takes no condition" in caught.value.body["message"]
    assert _ask(servers["plain"], "openchat_tiny", condition="").choices[0].finish_reason in ("length", "stop")


def test_a_condition_that_is_not_a_string_is_a_400(servers):
    request = urllib.request.Request(
        servers["default"].api_base + "/chat/completions",
        method="POST",
        headers={"Content-Type": "application/json"},
        data=json.dumps({"model": CRLFT_TYPE, "messages": MESSAGES, "condition": 4}).encode(),
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 400 and json.loads(caught.value.read())["error"]["param"] == "condition"


def test_unconditioned_type_refuses_the_condition_flag_at_start(tiny_model_dir, tmp_path):
    server = _launch("openchat_tiny", tiny_model_dir, tmp_path, "--condition", "GPT4")
    assert server.process.wait(timeout=120) != 0
    assert "takes no condition" in server.log_tail()


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
def test_chat_page_offers_the_condition_and_sends_it(servers, reference):
    from playwright.sync_api import sync_playwright

    _prompt, greedy = reference
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(servers["default"].base_url + "/")
            page.wait_for_selector("#condition-label", state="visible", timeout=15000)
            assert page.input_value("#condition") == "GPT4"
            page.fill("#condition", "GPT3")
            page.fill("#system", "Be brief.")
            page.fill("#temperature", "0")
            page.fill("#max-tokens", str(MAX_TOKENS))
            with page.expect_request("**/v1/chat/completions") as request_info:
                page.fill("#prompt", "Name a colour.")
                page.press("#prompt", "Enter")
            assert request_info.value.post_data_json["condition"] == "GPT3"
            page.wait_for_selector(".assistant .meta", timeout=15000)
            assert page.inner_text(".assistant .text") == greedy("GPT3")

            plain = browser.new_page()
            plain.goto(servers["plain"].base_url + "/")
            plain.wait_for_selector("#model:has-text('model: openchat_tiny')", timeout=15000)
            assert not plain.is_visible("#condition-label")
        finally:
            browser.close()


def test_get_model_answer_answers_under_the_condition_through_api_base(servers, reference, tmp_path):
    from tests.helpers.repo import run_module

    _prompt, greedy = reference
    questions = tmp_path / "questions"
    questions.mkdir()
    (questions / "question.jsonl").write_text(json.dumps({"question_id": 1, "text": "Name a colour."}) + "\n")
    answers = tmp_path / "answers"
    for condition in ("GPT3", "GPT4"):
        run_module(
            "evaluation.get_model_answer",
            "--api_base",
            servers["default"].api_base,
            "--data_path",
            str(questions),
            "--output_path",
            str(answers),
            "--condition",
            condition,
            "--temperature",
            "0",
            "--max_tokens",
            str(MAX_TOKENS),
        )
    for condition in ("GPT3", "GPT4"):
        (record,) = [json.loads(line) for line in (answers / f"questions_{CRLFT_TYPE}_{condition}.jsonl").open()]
        assert record["metadata"]["condition"] == condition
        assert record["text"] == greedy(condition, ITEMS[1:])  # the question alone, under that condition
