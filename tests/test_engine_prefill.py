"""A prefill projects only the last prompt position onto the vocabulary, and greedy output stays `generate`'s."""

from __future__ import annotations

import torch

from ochat.config import get_model_config, load_tokenizer, render_conversation
from ochat.models import load_model
from ochat.serving.engine import GenerationEngine
from ochat.serving.engine_types import SamplingParams


def test_prefill_computes_logits_for_the_last_position_only_and_output_stays_greedy(tiny_model_dir):
    config = get_model_config("openchat_tiny")
    tokenizer = load_tokenizer(config, tiny_model_dir)
    model = load_model(config, tiny_model_dir).eval()
    prompts = [
        render_conversation(config, tokenizer, [{"from": "human", "value": text}], add_generation_prompt=True).token_ids
        for text in ("Hello there, how are you today?", "Hi")
    ]
    positions_projected = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda module, inputs, output: positions_projected.append(inputs[0].shape[1])
    )
    try:
        engine = GenerationEngine(model, tokenizer.stop_token_ids, config.max_context)
        for index, prompt in enumerate(prompts):
            engine.add(str(index), prompt, SamplingParams(max_tokens=6, temperature=0))
        outputs = {"0": [], "1": []}
        while engine.has_work():
            for event in engine.step():
                if event.token_id is not None:
                    outputs[event.seq_id].append(event.token_id)
    finally:
        hook.remove()
    assert max(len(prompt) for prompt in prompts) > 1
    assert positions_projected and set(positions_projected) == {1}  # the joint prefill and every decode step
    with torch.inference_mode():
        for index, prompt in enumerate(prompts):
            expected = model.generate(
                torch.tensor([prompt]), max_new_tokens=6, do_sample=False, eos_token_id=tokenizer.stop_token_ids
            )[0, len(prompt) :].tolist()
            assert outputs[str(index)] == [t for t in expected if t not in tokenizer.stop_token_ids]
