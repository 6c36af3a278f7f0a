"""A Hugging Face tokenizer plus the ids the template needs, resolved from its own special tokens.

Special tokens are never looked up as text: BOS is the tokenizer's `bos_token`
(LLaMA's `<s>`, SmolLM2's `<|im_start|>`), EOT the added `<|end_of_turn|>` (or,
for `hf_chat`, the checkpoint's own `eos_token`); one that is missing or maps to
the unknown token is refused with one line, since a silent unk would train every
sample on a wrong id.

Text between two special tokens is encoded as the tokenizer encodes it inside
the whole chat-template text: a span that follows a special token is encoded
behind one (sentencepiece's Metaspace adds its leading `▁` only at the very
start of a text), so `apply_chat_template` gives the same ids. Spans are encoded
with special-token parsing off, so a user who types "<|end_of_turn|>" gets text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from ochat.config.model_config import ModelConfig


def _known_id(hf_tokenizer, token: Optional[str]) -> Optional[int]:
    """The id of a token string, or None when the vocabulary lacks it (maps to unk or nowhere)."""
    if not token:
        return None
    token_id = hf_tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (token_id == hf_tokenizer.unk_token_id and token != hf_tokenizer.unk_token):
        return None
    return token_id


@dataclass
class ChatTokenizer:
    """A Hugging Face tokenizer plus the ids the template needs, and span encoding."""

    hf_tokenizer: object
    config: ModelConfig
    _marker: Optional[tuple[str, int]] = field(default=None, init=False, repr=False)  # (text, its token count)

    @property
    def eot_token_id(self) -> int:
        token = self.config.eot_token or self.hf_tokenizer.eos_token
        token_id = _known_id(self.hf_tokenizer, token)
        if token_id is None:
            if self.config.eot_token is None:
                raise ValueError("the checkpoint's tokenizer has no eos_token to end a turn with")
            raise ValueError(
                f"tokenizer has no {self.config.eot_token!r} token; add it with "
                f"`python -m ochat.models.add_eot_token --model_type {self.config.name} --in BASE --out DIR`"
            )
        return token_id

    @property
    def bos_token_id(self) -> Optional[int]:
        """The tokenizer's own BOS for types that start with one; a BOS that is unk or absent is refused."""
        if self.config.bos_token is None:
            return None
        token_id = _known_id(self.hf_tokenizer, self.hf_tokenizer.bos_token)
        if token_id is None:
            raise ValueError(
                f"model type {self.config.name} starts every sample with BOS, but this tokenizer's bos_token "
                f"{self.hf_tokenizer.bos_token!r} is not in its vocabulary; set bos_token in tokenizer_config.json"
            )
        return token_id

    @property
    def stop_token_ids(self) -> list[int]:
        """Ids that end generation: EOT first, then the base model's own end tokens (those it has)."""
        ids = [self.eot_token_id]
        for token in (*self.config.extra_stop_tokens, self.hf_tokenizer.eos_token):
            token_id = _known_id(self.hf_tokenizer, token)
            if token_id is not None and token_id not in ids:
                ids.append(token_id)
        return ids

    def __len__(self) -> int:
        return len(self.hf_tokenizer)

    def encode_spans(
        self, texts: Sequence[str], after_special: Optional[Sequence[bool]] = None
    ) -> list[tuple[list[int], list[int]]]:
        """Each text's ids and each id's end offset in that text, in one batched call.

        `after_special[i]`: text i follows a special token in the rendered
        conversation (it is then encoded behind one, as in the whole text).
        """
        if not texts:
            return []
        if after_special is None:
            after_special = [False] * len(texts)
        marker, marker_tokens = self._special_marker()
        inputs = [marker + text if after else text for text, after in zip(texts, after_special)]
        encoded = self.hf_tokenizer(
            inputs, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True
        )
        results = []
        for after, ids, offsets in zip(after_special, encoded["input_ids"], encoded["offset_mapping"]):
            skip, shift = (marker_tokens, len(marker)) if after else (0, 0)
            results.append((list(ids[skip:]), [max(end - shift, 0) for _, end in offsets[skip:]]))
        return results

    def encode_segments(self, texts: Sequence[str]) -> list[list[int]]:
        """Tokenize each text alone, at the start of a text, never turning "<s>" into a special token."""
        return [ids for ids, _ in self.encode_spans(texts)]

    def _special_marker(self) -> tuple[str, int]:
        """A stand-in for "a special token came before", as (text, its token count).

        Special-token parsing stays off (so user text stays text); a control
        character that no merge can join plays the special token's part. It is
        chosen by probing: behind it, sample texts must encode exactly as behind
        a real special token. Where encoding alone already does that (byte-level
        BPE), no marker is needed.
        """
        if self._marker is None:
            self._marker = _find_marker(self.hf_tokenizer)
        return self._marker

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.hf_tokenizer.decode(list(token_ids), skip_special_tokens=skip_special_tokens)


_MARKER_CANDIDATES = ("", "\x01", "\x02", "\x1e", "\x1f")
_PROBE_TEXTS = ("Human: Hi there", "GPT4 Assistant: 42", " leading space", "\nnew line", "Assistant:", "x")


def _find_marker(hf_tokenizer) -> tuple[str, int]:
    special = next(
        (
            token
            for token in hf_tokenizer.all_special_tokens
            if len(hf_tokenizer.encode(token, add_special_tokens=False)) == 1
        ),
        None,
    )
    if special is None:
        return "", 0

    def encode(text: str, split: bool) -> list[int]:
        return hf_tokenizer(text, add_special_tokens=False, split_special_tokens=split)["input_ids"]

    expected = [encode(special + text, split=False)[1:] for text in _PROBE_TEXTS]
    for marker in _MARKER_CANDIDATES:
        marker_tokens = len(encode(marker, split=True)) if marker else 0
        got = [encode(marker + text, split=True)[marker_tokens:] for text in _PROBE_TEXTS]
        if got == expected:
            return marker, marker_tokens
    raise ValueError(
        f"cannot tokenize template text as {type(hf_tokenizer).__name__} does behind a special token; "
        "this tokenizer needs its own span encoding"
    )


def load_tokenizer(config: ModelConfig, path: str) -> ChatTokenizer:
    """Load the tokenizer saved in a model folder; its BOS and EOT must resolve (one clear error otherwise)."""
    from transformers import AutoTokenizer

    if not os.path.isdir(path):
        raise FileNotFoundError(f"model path {path!r} is not a folder")
    return ChatTokenizer(hf_tokenizer=AutoTokenizer.from_pretrained(path), config=config)
