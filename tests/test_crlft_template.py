"""Conditioned (C-RLFT) model types: registry entries, the conditioned template, its Jinja export, weights."""

from __future__ import annotations

import pytest

from ochat.config import get_model_config, load_tokenizer, render_conversation, role_prefix

CONVERSATION = [
    {"from": "system", "value": "Answer briefly."},
    {"from": "human", "value": "What is 2 + 2?"},
    {"from": "gpt", "value": "It is 4.\nEasy."},
    {"from": "human", "value": "And 3 + 3?"},
]
OPENAI_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}


@pytest.fixture(scope="module")
def config_and_tokenizer(tiny_crlft_model_dir):
    config = get_model_config("openchat_v3.2_tiny")
    return config, load_tokenizer(config, tiny_crlft_model_dir)


def test_registry_holds_both_conditioned_types_and_their_twins():
    v32, v35 = get_model_config("openchat_v3.2"), get_model_config("openchat_3.5")
    assert (v32.architecture, v32.max_context, v32.inference_condition) == ("llama", 4096, "GPT4")
    assert (v35.architecture, v35.max_context, v35.inference_condition) == ("mistral", 8192, "GPT4 Correct")
    for config in (v32, v35):
        twin = get_model_config(config.name + "_tiny")
        assert twin.is_tiny and twin.is_conditioned and twin.inference_condition == config.inference_condition
    assert not get_model_config("openchat").is_conditioned


def test_role_prefix_leads_with_the_condition_or_the_bare_role():
    config = get_model_config("openchat_v3.2")
    assert role_prefix(config, "human", "GPT4") == "GPT4 User:"
    assert role_prefix(config, "gpt", "GPT4") == "GPT4 Assistant:"
    assert role_prefix(config, "gpt") == "GPT4 Assistant:"  # the inference condition
    assert role_prefix(get_model_config("openchat_3.5"), "human") == "GPT4 Correct User:"
    assert role_prefix(config, "human", "") == "User:"


def test_unconditioned_types_refuse_a_condition(tiny_model_dir):
    config = get_model_config("openchat_tiny")
    tokenizer = load_tokenizer(config, tiny_model_dir)
    with pytest.raises(ValueError, match="takes no condition"):
        render_conversation(config, tokenizer, CONVERSATION[1:3], condition="GPT4")
    assert render_conversation(config, tokenizer, CONVERSATION[1:3], condition="") == render_conversation(
        config, tokenizer, CONVERSATION[1:3]
    )


@pytest.mark.parametrize("condition", ["GPT4", "GPT3", ""])
def test_layout_is_bos_then_condition_prefix_content_eot(config_and_tokenizer, condition):
    config, tokenizer = config_and_tokenizer
    rendered = render_conversation(config, tokenizer, CONVERSATION[:3], condition=condition)
    token_ids, supervise_mask = rendered.token_ids, rendered.supervise_mask
    expected, expected_mask = [tokenizer.bos_token_id], [False]
    for item in CONVERSATION[:3]:
        prefix_text = (
            f"{condition} {config.role_prefix[item['from']]}" if condition else config.role_prefix[item["from"]]
        )
        ids, ends = tokenizer.encode_spans([f"{prefix_text} {item['value']}"], [True])[0]
        boundary = next(i for i, end in enumerate(ends) if end > len(prefix_text) + 1)
        expected += ids + [tokenizer.eot_token_id]
        expected_mask += [False] * boundary + [item["from"] == "gpt"] * (len(ids) - boundary + 1)
    assert token_ids == expected and supervise_mask == expected_mask
    text = tokenizer.decode(token_ids)
    if condition:
        assert f"{condition} System:" in text and f"{condition} Assistant:" in text
    else:
        assert "System:" in text and "GPT" not in text


def test_different_conditions_give_different_prompts(config_and_tokenizer):
    config, tokenizer = config_and_tokenizer
    gpt4 = render_conversation(config, tokenizer, CONVERSATION, add_generation_prompt=True, condition="GPT4").token_ids
    gpt3 = render_conversation(config, tokenizer, CONVERSATION, add_generation_prompt=True, condition="GPT3").token_ids
    default = render_conversation(config, tokenizer, CONVERSATION, add_generation_prompt=True).token_ids
    assert default == gpt4 and gpt3 != gpt4
    assert tokenizer.decode(gpt3).endswith("GPT3 Assistant:")


@pytest.mark.parametrize("condition", [None, "GPT3", ""])
def test_exported_chat_template_renders_the_same_token_ids(config_and_tokenizer, condition):
    config, tokenizer = config_and_tokenizer
    messages = [{"role": OPENAI_ROLES[item["from"]], "content": item["value"]} for item in CONVERSATION]
    extra = {} if condition is None else {"condition": condition}
    text = tokenizer.hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
    from_template = tokenizer.hf_tokenizer(text, add_special_tokens=False)["input_ids"]
    expected = render_conversation(
        config, tokenizer, CONVERSATION, add_generation_prompt=True, condition=condition
    ).token_ids
    assert from_template == expected
    if condition is None:
        assert text.startswith("<s>GPT4 System: Answer briefly.<|end_of_turn|>GPT4 User: What")


def test_item_weights_land_on_exactly_the_supervised_tokens(config_and_tokenizer):
    config, tokenizer = config_and_tokenizer
    items = [
        {"from": "human", "value": "Hi", "weight": 0.0},
        {"from": "gpt", "value": "Hello there.", "weight": 0.1},
        {"from": "human", "value": "More?", "weight": 0.0},
        {"from": "gpt", "value": "Sure.", "weight": 0.5},
    ]
    sample = render_conversation(config, tokenizer, items, condition="GPT3")
    token_ids, supervise_mask = sample.token_ids, sample.supervise_mask
    assert [weight > 0 for weight in sample.weights] == supervise_mask
    eot_positions = [i for i, t in enumerate(token_ids) if t == tokenizer.eot_token_id]
    assert [sample.weights[i] for i in eot_positions] == [0.0, 0.1, 0.0, 0.5]


def test_a_zero_weight_answer_is_not_supervised_and_a_negative_one_is_refused(config_and_tokenizer):
    config, tokenizer = config_and_tokenizer
    mask = render_conversation(
        config, tokenizer, [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo", "weight": 0}]
    ).supervise_mask
    assert not any(mask)
    with pytest.raises(ValueError, match="weight"):
        render_conversation(config, tokenizer, [{"from": "gpt", "value": "Yo", "weight": -1}])
