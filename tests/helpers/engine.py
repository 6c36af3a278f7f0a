"""The generation engine in process on the tiny model, beside the plain `model.generate` it must reproduce."""

from __future__ import annotations

import torch

from ochat.config import get_model_config, load_tokenizer, render_conversation
from ochat.models import load_model
from ochat.serving.engine import GenerationEngine
from ochat.serving.engine_types import TokenEvent
from tests.helpers.repo import TINY_MODEL_TYPE

MODEL_TYPE = TINY_MODEL_TYPE


class Reference:
    """The tiny model and its tokenizer: engines built on them, and the plain greedy `generate` they must match."""

    def __init__(self, model_dir: str):
        self.config = get_model_config(MODEL_TYPE)
        self.tokenizer = load_tokenizer(self.config, model_dir)
        self.model = load_model(self.config, model_dir).eval()
        self.stop_ids = self.tokenizer.stop_token_ids

    def prompt_ids(self, text: str) -> list[int]:
        ids = render_conversation(
            self.config, self.tokenizer, [{"from": "human", "value": text}], add_generation_prompt=True
        ).token_ids
        return ids

    def engine(self, **kwargs) -> GenerationEngine:
        return GenerationEngine(
            self.model, self.stop_ids, self.config.max_context, tokenizer=self.tokenizer.hf_tokenizer, **kwargs
        )

    @torch.inference_mode()
    def greedy(self, prompt: list[int], max_tokens: int) -> list[int]:
        output = self.model.generate(
            torch.tensor([prompt]), max_new_tokens=max_tokens, do_sample=False, eos_token_id=self.stop_ids
        )[0, len(prompt) :].tolist()
        return [t for t in output if t not in self.stop_ids]


def run(engine: GenerationEngine, check=None) -> dict[str, list[TokenEvent]]:
    events: dict[str, list[TokenEvent]] = {}
    while engine.has_work():
        for event in engine.step():
            events.setdefault(event.seq_id, []).append(event)
        if check is not None:
            check(engine)
    return events


def tokens(events: list[TokenEvent]) -> list[int]:
    return [event.token_id for event in events if event.token_id is not None]
