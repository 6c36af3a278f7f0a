"""The registry and the one template renderer: token layout, masks, fast == slow tokenization."""

from __future__ import annotations

import json
import os

import pytest

from ochat.config import MODEL_CONFIGS, get_model_config, load_tokenizer, render_conversation, render_conversations
from ochat.config.conversation_template import chat_template_jinja, role_prefix

CONVERSATION = [
    {"from": "human", "value": "What is 2 + 2?"},
    {"from": "gpt", "value": "It is 4."},
    {"from": "human", "value": "And 3 + 3?"},
    {"from": "gpt", "value": "6, of course."},
]


@pytest.fixture(scope="module", params=sorted(name for name in MODEL_CONFIGS if name != "hf_chat"))
def config_and_tokenizer(request, tiny_model_dir):
    config = get_model_config(request.param)
    return config, load_tokenizer(config, tiny_model_dir)


def test_unknown_model_type_names_the_known_ones():
    with pytest.raises(ValueError, match="openchat_tiny"):
        get_model_config("gpt-17")


def test_registry_holds_every_type_and_its_tiny_twin():
    for name in ("openchat", "openchat_8192", "opencoder"):
        assert get_model_config(name).tiny_shape is None
        twin = get_model_config(name + "_tiny")
        assert twin.is_tiny and twin.max_context == get_model_config(name).max_context
    assert get_model_config("openchat").max_context == 2048
    assert get_model_config("openchat_8192").max_context == 8192
    assert get_model_config("opencoder").bos_token is None
    assert get_model_config("opencoder").role_prefix["human"] == "User:"


def test_render_lays_out_bos_turn_text_eot(config_and_tokenizer):
    config, tokenizer = config_and_tokenizer
    if config.uses_checkpoint_template:
        pytest.skip("hf_chat renders with the checkpoint's own template")
    rendered = render_conversation(config, tokenizer, CONVERSATION)
    token_ids, supervise_mask = rendered.token_ids, rendered.supervise_mask
    expected = [tokenizer.bos_token_id] if config.bos_token else []
    for index, item in enumerate(CONVERSATION):
        text = role_prefix(config, item["from"]) + " " + item["value"]
        expected += tokenizer.encode_spans([text], [bool(expected) or index > 0])[0][0] + [tokenizer.eot_token_id]
    assert token_ids == expected
    assert len(supervise_mask) == len(token_ids)


def test_mask_is_true_exactly_on_assistant_content_and_its_eot(config_and_tokenizer):
    config, tokenizer = config_and_tokenizer
    rendered = render_conversation(config, tokenizer, CONVERSATION)
    token_ids, supervise_mask = rendered.token_ids, rendered.supervise_mask
    supervised_text = tokenizer.decode([t for t, m in zip(token_ids, supervise_mask) if m])
    assert "It is 4." in supervised_text and "6, of course." in supervised_text
    assert "Assistant" not in supervised_text and "2 + 2" not in supervised_text
    eot_positions = [i for i, t in enumerate(token_ids) if t == tokenizer.eot_token_id]
    assert [supervise_mask[i] for i in eot_positions] == [False, True, False, True]


def test_generation_prompt_ends_with_open_assistant_prefix(config_and_tokenizer):
    config, tokenizer = config_and_tokenizer
    if config.uses_checkpoint_template:
        pytest.skip("hf_chat renders with the checkpoint's own template")
    rendered = render_conversation(config, tokenizer, CONVERSATION[:3], add_generation_prompt=True)
    prompt_ids, prompt_mask = rendered.token_ids, rendered.supervise_mask
    closed_ids = render_conversation(config, tokenizer, CONVERSATION[:3]).token_ids
    assistant_prefix = tokenizer.encode_spans([role_prefix(config, "gpt")], [True])[0][0]
    assert prompt_ids == closed_ids + assistant_prefix
    assert not any(prompt_mask[len(closed_ids) :])
    assert not role_prefix(config, "gpt").endswith(" ")  # the answer's first token brings its own space


def test_system_message_goes_through_the_template(config_and_tokenizer):
    config, tokenizer = config_and_tokenizer
    rendered = render_conversation(
        config, tokenizer, [{"from": "system", "value": "Be brief."}] + CONVERSATION[:1], add_generation_prompt=True
    )
    with_system, mask = rendered.token_ids, rendered.supervise_mask
    without_system = render_conversation(config, tokenizer, CONVERSATION[:1], add_generation_prompt=True).token_ids
    text = tokenizer.decode(with_system)
    assert "Be brief." in text and role_prefix(config, "system").strip() in text
    assert len(with_system) > len(without_system) and not any(mask)


def test_text_that_looks_like_special_tokens_stays_text(config_and_tokenizer):
    config, tokenizer = config_and_tokenizer
    token_ids = render_conversation(
        config, tokenizer, [{"from": "human", "value": "print('<|end_of_turn|>')"}, {"from": "gpt", "value": "<s>"}]
    ).token_ids
    assert token_ids.count(tokenizer.eot_token_id) == 2
    bos_count = 1 if config.bos_token else 0
    assert token_ids.count(tokenizer.hf_tokenizer.convert_tokens_to_ids("<s>")) == bos_count


def test_bad_roles_are_a_clear_error(config_and_tokenizer):
    config, tokenizer = config_and_tokenizer
    with pytest.raises(ValueError, match="role"):
        render_conversation(config, tokenizer, [{"from": "bot", "value": "hi"}])


def test_batched_rendering_equals_one_at_a_time(tiny_model_dir, tiny_data_dir):
    config = get_model_config("openchat_tiny")
    tokenizer = load_tokenizer(config, tiny_model_dir)
    with open(os.path.join(tiny_data_dir, "sharegpt_gpt4.json"), encoding="utf-8") as handle:
        conversations = [c["items"] for c in json.load(handle)[:20]]
    assert render_conversations(config, tokenizer, conversations) == [
        render_conversation(config, tokenizer, items) for items in conversations
    ]


def test_chat_template_renders_the_same_text(tiny_model_dir):
    config = get_model_config("openchat_tiny")
    tokenizer = load_tokenizer(config, tiny_model_dir)
    assert tokenizer.hf_tokenizer.chat_template == chat_template_jinja(config)
    text = tokenizer.hf_tokenizer.apply_chat_template(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == "<s>Human: Hi<|end_of_turn|>Assistant: Hello<|end_of_turn|>Human: Bye<|end_of_turn|>Assistant:"
