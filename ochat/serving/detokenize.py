"""Incremental detokenization that never splits a multi-byte character, and stop strings cut from streamed text.

Text is released only after a token that is not a byte-fallback piece
(`<0xE4>`): a run of byte pieces decodes as a whole (an invalid run becomes
one U+FFFD per byte), so a character built from bytes is complete, and stays
the same, only once the run has ended. Byte-level BPE vocabularies (GPT-2,
StarCoder) have no such pieces but may end a token inside a character, so
text whose new part ends in U+FFFD is held as well. Each release decodes a short window
that starts one token before the unreleased tokens, so sentencepiece's
stripping of the first token's leading space comes out exactly as in a full
decode. `tokenizers.decoders.DecodeStream` was tried first: on the tiny
model's random output it raised "Invalid prefix encountered" and dropped
trailing bytes. The guarantee, tested on random ids:

    decoder = IncrementalDecoder(decode, byte_ids, special_ids)   # decode skips special tokens
    "".join(decoder.step(token_id) for token_id in ids) + decoder.flush() == decode(ids)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence

_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
REPLACEMENT_CHARACTER = "\ufffd"


def byte_token_ids(hf_tokenizer) -> frozenset[int]:
    """Ids of the byte-fallback pieces `<0x00>`..`<0xFF>` of a sentencepiece-style vocabulary."""
    return frozenset(token_id for token, token_id in hf_tokenizer.get_vocab().items() if _BYTE_PIECE.match(token))


class IncrementalDecoder:
    def __init__(
        self,
        decode: Callable[[Sequence[int]], str],
        byte_token_ids: Collection[int] = frozenset(),
        special_token_ids: Collection[int] = frozenset(),
        strip_leading: str = "",
    ):
        self._decode = decode
        self._strip_leading = strip_leading  # dropped once from the start of the text (the template's separator)
        self._byte_token_ids = byte_token_ids
        self._special_token_ids = special_token_ids  # left out entirely, as decode(skip_special_tokens=True) does
        self._ids: list[int] = []
        self._released = 0  # tokens before this index are already text
        self._context_text = ""  # decode of the one released token kept as context (window start)

    def step(self, token_id: int) -> str:
        """Text made visible by one more token ("" while a byte run may still grow)."""
        if token_id in self._special_token_ids:
            return ""
        self._ids.append(token_id)
        if token_id in self._byte_token_ids:
            return ""
        return self._release(final=False)

    def flush(self) -> str:
        """Whatever is still held at the end of generation (an unfinished character as U+FFFD)."""
        return self._release(final=True) if self._released < len(self._ids) else ""

    def _release(self, final: bool) -> str:
        window_start = max(self._released - 1, 0)
        window_text = self._decode(self._ids[window_start:])
        delta = window_text[len(self._context_text) :]
        if delta.endswith(REPLACEMENT_CHARACTER) and not final:
            return ""  # byte-level BPE (GPT-2 style) tokens can end inside a character: wait for the rest
        self._released = len(self._ids)
        self._context_text = self._decode(self._ids[-1:])
        if self._strip_leading and delta:
            delta = delta.removeprefix(self._strip_leading)
            self._strip_leading = ""
        return delta


def special_token_ids(hf_tokenizer) -> frozenset[int]:
    """Ids that `decode(..., skip_special_tokens=True)` leaves out."""
    added = getattr(hf_tokenizer, "added_tokens_decoder", {}) or {}
    return frozenset(hf_tokenizer.all_special_ids) | frozenset(i for i, token in added.items() if token.special)


class TokenPieces:
    """Each token's own bytes and display string, as OpenAI's `logprobs` report them.

    A sentencepiece piece is its text with `▁` as a space (decoding one token
    alone would drop that space); a byte piece `<0xE4>` is that one byte; other
    vocabularies decode the token alone. Bytes that are not whole UTF-8
    characters show as `bytes:\\xe4`, as OpenAI writes them.
    """

    def __init__(self, hf_tokenizer):
        self._hf_tokenizer = hf_tokenizer
        self._cache: dict[int, tuple[str, list[int]]] = {}

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        found = self._cache.get(token_id)
        if found is None:
            found = self._cache[token_id] = self._piece(token_id)
        return found

    def _piece(self, token_id: int) -> tuple[str, list[int]]:
        piece = self._hf_tokenizer.convert_ids_to_tokens(token_id) or ""
        if _BYTE_PIECE.match(piece):
            raw = bytes([int(piece[3:5], 16)])
        elif "\u2581" in piece:
            raw = piece.replace("\u2581", " ").encode()
        else:
            raw = self._hf_tokenizer.decode([token_id]).encode()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = "bytes:" + "".join(f"\\x{byte:02x}" for byte in raw)
        return text, list(raw)


class StopStringFilter:
    """Releases text while holding back any tail that could start a stop string."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to show, whether a stop string ended the choice)."""
        if not self.stops:
            return text, False
        self.pending += text
        hits = [index for index in (self.pending.find(stop) for stop in self.stops) if index >= 0]
        if hits:
            released, self.pending = self.pending[: min(hits)], ""
            return released, True
        hold = 0
        for stop in self.stops:
            for length in range(min(len(stop) - 1, len(self.pending)), hold, -1):
                if stop.startswith(self.pending[-length:]):
                    hold = length
                    break
        released = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold :]
        return released, False

    def flush(self) -> str:
        released, self.pending = self.pending, ""
        return released
