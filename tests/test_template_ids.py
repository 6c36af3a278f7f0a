"""Templates meet real tokenizers: the data pipeline, the server and `apply_chat_template` give the same ids.

Checked for a sentencepiece vocabulary (the tiny LLaMA's, built like LLaMA's) and a byte-level
BPE one (SmolLM2's, as shipped), on the bundled corpus and fuzzed text: a difference would be a
train/serve skew for every engine (vLLM, llama.cpp, transformers) that serves our checkpoints
through the exported template.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random

import pytest
from transformers import AutoTokenizer

from data_pipeline.tokenized_samples import convert_conversations
from ochat.config import ChatTokenizer, get_model_config, load_tokenizer, render_conversation
from ochat.config.conversation_template import chat_template_jinja
from ochat.serving.protocol import ChatCompletionRequest

ROLES = {"system": "system", "human": "user", "gpt": "assistant"}
MODEL_TYPES = ("openchat", "opencoder", "openchat_v3.2", "openchat_3.5")


def _fuzz_text(rng: random.Random) -> str:
    pieces = ["def ", "return x", "  ", "\n", "\n\n", "\t", "é", "你好", "привет", "😀", "123456", "_x", "```py\n"]
    pieces += ["    indented", " ", ":", "Human:", "Assistant: ", "a", "The quick brown fox", "GPT4", "'s", "?!"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 20)))


def _conversations(corpus_dir: str, count: int = 120) -> list[list[dict]]:
    with open(os.path.join(corpus_dir, "sharegpt_gpt4.json"), encoding="utf-8") as handle:
        conversations = [c["items"] for c in json.load(handle)[:count]]
    rng = random.Random(7)
    for _ in range(count):
        turns = [{"from": "system", "value": _fuzz_text(rng)}] if rng.random() < 0.3 else []
        for index in range(rng.randint(1, 3)):
            turns.append({"from": "human", "value": _fuzz_text(rng)})
            turns.append({"from": "gpt", "value": _fuzz_text(rng) if index or rng.random() < 0.9 else ""})
        conversations.append(turns)
    return conversations


@pytest.fixture(scope="module", params=["sentencepiece", "byte_level_bpe"])
def family_tokenizer(request, tiny_model_dir, smollm2_tokenizer_dir):
    """A Hugging Face tokenizer of each family with <|end_of_turn|> added, as add_eot_token leaves it."""
    hf_tokenizer = AutoTokenizer.from_pretrained(
        tiny_model_dir if request.param == "sentencepiece" else smollm2_tokenizer_dir
    )
    if "<|end_of_turn|>" not in hf_tokenizer.get_vocab():
        hf_tokenizer.add_special_tokens({"additional_special_tokens": ["<|end_of_turn|>"]})
    return request.param, hf_tokenizer


def _template_ids(hf_tokenizer, items: list[dict], add_generation_prompt: bool) -> list[int]:
    messages = [{"role": ROLES[item["from"]], "content": item["value"]} for item in items]
    text = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    return hf_tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_data_server_and_chat_template_ids_are_identical(family_tokenizer, tiny_data_dir, model_type):
    family, hf_tokenizer = family_tokenizer
    config = dataclasses.replace(get_model_config(model_type), max_context=1 << 20)  # whole conversations fit
    hf_tokenizer.chat_template = chat_template_jinja(config)
    tokenizer = ChatTokenizer(hf_tokenizer, config)
    conversations = _conversations(tiny_data_dir)
    # the data pipeline's samples
    samples = convert_conversations(config, tokenizer, [{"items": items} for items in conversations])
    assert len(samples) == len(conversations)
    for items, sample in zip(conversations, samples):
        assert sample.token_ids == _template_ids(hf_tokenizer, items, add_generation_prompt=False), (family, items)
        # the server's prompt: the request as the HTTP layer types it, through the same renderer
        request = ChatCompletionRequest(
            model="m", messages=[{"role": ROLES[i["from"]], "content": i["value"]} for i in items[:-1]]
        )
        prompt_ids = render_conversation(config, tokenizer, request.conversation, add_generation_prompt=True).token_ids
        assert prompt_ids == _template_ids(hf_tokenizer, items[:-1], add_generation_prompt=True), (family, items)
        # a prompt's ids are a prefix of the same conversation answered: no token straddles the open prefix
        assert sample.token_ids[: len(prompt_ids)] == prompt_ids


def test_mask_covers_exactly_the_answer_text_and_its_eot(family_tokenizer):
    family, hf_tokenizer = family_tokenizer
    config = get_model_config("openchat")
    tokenizer = ChatTokenizer(hf_tokenizer, config)
    items = [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Blue, like the sky."}]
    rendered = render_conversation(config, tokenizer, items)
    token_ids, supervise_mask = rendered.token_ids, rendered.supervise_mask
    supervised = [t for t, m in zip(token_ids, supervise_mask) if m]
    assert supervised[-1] == tokenizer.eot_token_id
    assert hf_tokenizer.decode(supervised[:-1]).strip() == "Blue, like the sky."
    assert "Assistant" not in hf_tokenizer.decode(supervised)


def test_bos_and_eot_are_the_tokenizers_own_special_tokens(smollm2_tokenizer_dir):
    hf_tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    hf_tokenizer.add_special_tokens({"additional_special_tokens": ["<|end_of_turn|>"]})
    tokenizer = ChatTokenizer(hf_tokenizer, get_model_config("openchat"))
    token_ids = render_conversation(tokenizer.config, tokenizer, [{"from": "human", "value": "Hi"}]).token_ids
    assert hf_tokenizer.convert_ids_to_tokens(token_ids[:1]) == ["<|im_start|>"]  # SmolLM2's BOS, id 1
    assert token_ids[0] == hf_tokenizer.bos_token_id != hf_tokenizer.unk_token_id
    assert token_ids[-1] == hf_tokenizer.convert_tokens_to_ids("<|end_of_turn|>")
    assert 0 not in token_ids  # SmolLM2's unk (<|endoftext|>)


def test_a_template_token_that_resolves_to_unk_is_refused(smollm2_tokenizer_dir):
    hf_tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    hf_tokenizer.add_special_tokens({"additional_special_tokens": ["<|end_of_turn|>"]})
    hf_tokenizer.bos_token = "<s>"  # a LLaMA name this vocabulary does not hold: it would encode as unk
    tokenizer = ChatTokenizer(hf_tokenizer, get_model_config("openchat"))
    with pytest.raises(ValueError, match="bos_token '<s>' is not in its vocabulary"):
        render_conversation(tokenizer.config, tokenizer, [{"from": "human", "value": "Hi"}])
    without_eot = ChatTokenizer(AutoTokenizer.from_pretrained(smollm2_tokenizer_dir), get_model_config("openchat"))
    with pytest.raises(ValueError, match="add_eot_token"):
        render_conversation(without_eot.config, without_eot, [{"from": "human", "value": "Hi"}])


def test_text_that_looks_like_a_special_token_stays_text(family_tokenizer):
    _, hf_tokenizer = family_tokenizer
    tokenizer = ChatTokenizer(hf_tokenizer, get_model_config("openchat"))
    special = hf_tokenizer.bos_token
    token_ids = render_conversation(
        tokenizer.config, tokenizer, [{"from": "human", "value": f"say {special} <|end_of_turn|>"}]
    ).token_ids
    assert token_ids.count(tokenizer.eot_token_id) == 1 and token_ids.count(tokenizer.bos_token_id) == 1


def test_hf_chat_serves_the_checkpoints_own_template(smollm2_tokenizer_dir):
    config = get_model_config("hf_chat")
    tokenizer = load_tokenizer(config, smollm2_tokenizer_dir)
    items = [{"from": "human", "value": "What is the capital of France?"}]
    prompt_ids = render_conversation(config, tokenizer, items, add_generation_prompt=True).token_ids
    assert prompt_ids == _template_ids(tokenizer.hf_tokenizer, items, add_generation_prompt=True)
    assert tokenizer.hf_tokenizer.decode(prompt_ids).endswith("<|im_start|>assistant\n")
    assert tokenizer.eot_token_id == tokenizer.hf_tokenizer.convert_tokens_to_ids("<|im_end|>")
    with pytest.raises(ValueError, match="registry template"):
        convert_conversations(config, tokenizer, [{"items": items + [{"from": "gpt", "value": "Paris."}]}])
