"""The slow, obviously right tokenization that the fast batched encoder is checked against."""

from __future__ import annotations

from collections.abc import Sequence

from ochat.config import ChatTokenizer


def encode_segments_reference(tokenizer: ChatTokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Each segment alone: sentencepiece one call per text where the model has it, else the HF tokenizer."""
    if tokenizer.sentencepiece is None:
        return [
            tokenizer.hf_tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True) for text in texts
        ]
    return [tokenizer.sentencepiece.encode(text) for text in texts]
