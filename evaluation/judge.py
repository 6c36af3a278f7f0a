"""Reading scores and verdicts out of free-form judge replies.

Judges are asked for an exact format but write many: "8 7", "8, 7", "[8, 7]",
"8/10 and 7/10", "Assistant 1: 8\\nAssistant 2: 7", "Scores: 8.5 7", on the last
line (evidence first, as we ask) or on the first (the older Vicuna format). A reply
that yields no unambiguous pair returns None, never a guess: the caller retries and
finally records the review as failed.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from evaluation.api_client import ChatRequestError

_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?!\w|\.\d)")
_SCORE_WORDS = re.compile(r"\b(?:scores?|ratings?|overall|final|and|vs|assistants?)\b|[\s:;,\[\]()\-=|]", re.IGNORECASE)
_OUT_OF_TEN = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/|out of)\s*10(?![\d.])", re.IGNORECASE)
_ASSISTANT_LABEL = re.compile(r"\bassistant\s*(?:1|2|a|b)\b", re.IGNORECASE)
_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_RATING_FALLBACK = re.compile(r"\[\s*(\d+(?:\.\d+)?)\s*\]")
_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def _score_pair_in(text: str, strict: bool) -> Optional[tuple[float, float]]:
    """Two numbers in 0..10 in `text`; when strict, the line must hold nothing but them and score words."""
    text = _OUT_OF_TEN.sub(r"\1", text)
    text = _ASSISTANT_LABEL.sub(" ", text)
    text = text.replace("*", " ")
    numbers = [float(value) for value in _NUMBER.findall(text)]
    if len(numbers) != 2 or not all(0 <= number <= 10 for number in numbers):
        return None
    if strict and _SCORE_WORDS.sub("", _NUMBER.sub("", text)).strip(". "):
        return None
    return numbers[0], numbers[1]


def parse_score_pair(reply: str) -> Optional[tuple[float, float]]:
    """(score of assistant 1, score of assistant 2) from a judge reply, or None when unclear.

    Looks at the last line, the last two lines together, then the first line and the
    first two lines together: first for a place holding only the two scores (and words
    like "Assistant 1:", "Scores", "and"), then for any place with exactly two numbers in 0..10.
    """
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return None
    candidates = [lines[-1], " ".join(lines[-2:]), lines[0], " ".join(lines[:2])]
    for strict in (True, False):
        for candidate in candidates:
            pair = _score_pair_in(candidate, strict)
            if pair is not None:
                return pair
    return None


def parse_rating(reply: str) -> Optional[float]:
    """MT-bench single-answer rating: the last "[[r]]" (or "[r]" when no double brackets) in 1..10."""
    matches = _RATING.findall(reply) or _RATING_FALLBACK.findall(reply)
    if not matches:
        return None
    rating = float(matches[-1])
    return rating if 1 <= rating <= 10 else None


def parse_pairwise_verdict(reply: str) -> Optional[str]:
    """MT-bench pairwise verdict: "A", "B" or "C" (tie) from the last "[[X]]"; None when absent."""
    matches = _VERDICT.findall(reply)
    return matches[-1] if matches else None


async def ask_judge(client, model: str, messages: list[dict], parse: Callable[[str], Any], parse_retries: int,
                    **params) -> tuple[Optional[str], Any, Optional[str], int]:
    """Asks until `parse` reads the reply (at most 1 + parse_retries times).

    Returns (last reply, parsed value or None, transport error or None, attempts). A reply
    that never parses gives parsed None: the caller records the judgement as failed.
    """
    reply, attempts = None, 0
    try:
        for _ in range(parse_retries + 1):
            attempts += 1
            reply = await client.chat(model, messages, **params)
            parsed = parse(reply)
            if parsed is not None:
                return reply, parsed, None, attempts
    except ChatRequestError as error:
        return reply, None, str(error), attempts
    return reply, None, None, attempts
