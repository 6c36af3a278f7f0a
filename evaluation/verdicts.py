"""Reading verdicts out of judge replies: every kind of verdict every judging mode asks for.

A `VerdictKind` holds both ways of asking: the free-text parser (judges are asked for
an exact format but write many) and, for `--structured`, the JSON schema sent as
`response_format` with the explanation first (evidence calibration) and the reader of
the JSON reply. A reply that yields no unambiguous verdict reads as None, never a
guess: the runner asks again and finally records the call as failed.

| kind            | used by                    | free text               | JSON fields after "explanation" |
|-----------------|----------------------------|-------------------------|---------------------------------|
| `score_pair`    | Vicuna pairwise            | "8 7", "[8, 7]", ...    | `score_1`, `score_2` (0..10 int)|
| `rating`        | MT-bench single            | "Rating: [[8]]"         | `rating` (1..10 int)            |
| `verdict_abc`   | MT-bench pairwise          | "[[A]]", "[[B]]", "[[C]]" | `verdict` "A" / "B" / "C"     |
| `preference_ab` | AlpacaEval-style           | "[[a]]", "[[b]]", "[[tie]]" | `verdict` "a" / "b" / "tie" |
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

# A minus at the start of a number is its sign ("-1 7" is no verdict); between numbers ("8-7") it is not.
_NUMBER = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?!\w|\.\d)")
# What a verdict line may hold besides its two scores: "Scores: 8 7", "Assistant 1: 8, Assistant 2: 7",
# "Assistant 1 receives a score of 4, while Assistant 2 receives 10". Any other word makes it prose.
_SCORE_WORDS = re.compile(
    r"\b(?:scores?|scored|ratings?|rated|overall|final|and|vs|assistants?|receives?|gets?|earns?|deserves?|"
    r"a|of|is|are|while|whereas|respectively)\b|[\s:;,\[\]()\-=|]",
    re.IGNORECASE,
)
_OUT_OF_TEN = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/|out of)\s*10(?![\d.])", re.IGNORECASE)
_ASSISTANT_LABEL = re.compile(r"\bassistant\s*(?:1|2|a|b)\b", re.IGNORECASE)
_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_RATING_FALLBACK = re.compile(r"\[\s*(\d+(?:\.\d+)?)\s*\]")
_BRACKETED = re.compile(r"\[\[\s*([A-Za-z]+)\s*\]\]")


# ---------------------------------------------------------------- free text


def _score_pair_in(text: str) -> Optional[tuple[float, float]]:
    """The two scores (0..10) of a verdict line: it holds them and score words, nothing else."""
    text = _OUT_OF_TEN.sub(r"\1", text)
    text = _ASSISTANT_LABEL.sub(" ", text)
    text = text.replace("*", " ")
    numbers = [float(value) for value in _NUMBER.findall(text)]
    if len(numbers) != 2 or not all(0 <= number <= 10 for number in numbers):
        return None
    if _SCORE_WORDS.sub("", _NUMBER.sub("", text)).strip(". "):
        return None
    return numbers[0], numbers[1]


def parse_score_pair(reply: str) -> Optional[tuple[float, float]]:
    """(score of assistant 1, score of assistant 2) from a judge reply, or None when it holds no verdict.

    Looks at the last line, the last two lines together, then the first line and the first
    two lines together, for a place holding only the two scores and words like "Assistant 1:",
    "Scores", "and". Two numbers in prose ("Assistant 1 lists 3 steps while Assistant 2 lists
    5 steps") are no verdict, nor is a negative score ("-1 7").
    """
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return None
    for candidate in (lines[-1], " ".join(lines[-2:]), lines[0], " ".join(lines[:2])):
        pair = _score_pair_in(candidate)
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


def _last_bracketed(reply: str, allowed: tuple[str, ...], case_sensitive: bool) -> Optional[str]:
    """The last "[[X]]" whose X is one of `allowed`; FastChat's and AlpacaEval's verdict convention."""
    for word in reversed(_BRACKETED.findall(reply)):
        word = word if case_sensitive else word.lower()
        if word in allowed:
            return word
    return None


def parse_pairwise_verdict(reply: str) -> Optional[str]:
    """MT-bench pairwise verdict: "A", "B" or "C" (tie) from the last "[[X]]"; None when absent."""
    return _last_bracketed(reply, ("A", "B", "C"), case_sensitive=True)


def parse_preference(reply: str) -> Optional[str]:
    """AlpacaEval-style verdict: "a", "b" or "tie" from the last "[[a]]" / "[[b]]" / "[[tie]]", any case."""
    return _last_bracketed(reply, ("a", "b", "tie"), case_sensitive=False)


# ---------------------------------------------------------------- structured (JSON) replies


def _json_object(reply: str) -> Optional[dict]:
    """The reply as a JSON object; tolerates a ```json fence some servers add around it."""
    text = reply.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _number_in(value: Any, low: float, high: float) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        return None
    return float(value)


def _read_score_pair(data: dict) -> Optional[tuple[float, float]]:
    pair = _number_in(data.get("score_1"), 0, 10), _number_in(data.get("score_2"), 0, 10)
    return None if None in pair else pair


def _read_rating(data: dict) -> Optional[float]:
    return _number_in(data.get("rating"), 1, 10)


def _read_choice(allowed: tuple[str, ...]) -> Callable[[dict], Optional[str]]:
    return lambda data: data.get("verdict") if data.get("verdict") in allowed else None


def _schema(fields: dict) -> dict:
    """An object schema with "explanation" first: the judge explains before it decides."""
    properties = {"explanation": {"type": "string"}, **fields}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


@dataclass(frozen=True)
class VerdictKind:
    name: str
    parse_text: Callable[[str], Any]
    schema: dict
    read_json: Callable[[dict], Any]
    instruction: str

    def parse(self, reply: str, structured: bool) -> Any:
        """The verdict in a reply, or None; a structured reply is read as JSON, then as text if it is not JSON."""
        if structured:
            data = _json_object(reply)
            if data is not None:
                return self.read_json(data)
        return self.parse_text(reply)

    def valid_verdict(self, verdict: Any) -> bool:
        """True when `verdict` (as a call log stores it) is one this kind can produce."""
        if self.name == "score_pair":
            return (
                isinstance(verdict, list)
                and len(verdict) == 2
                and _read_score_pair({"score_1": verdict[0], "score_2": verdict[1]}) is not None
            )
        if self.name == "rating":
            return _read_rating({"rating": verdict}) is not None
        return self.read_json({"verdict": verdict}) is not None

    def response_format(self, max_explanation_chars: Optional[int] = None) -> dict:
        """OpenAI's json_schema response format; `max_explanation_chars` bounds the explanation (maxLength), so a
        grammar-constrained model that rambles still reaches the verdict within its token budget."""
        schema = self.schema
        if max_explanation_chars:
            explanation = {**schema["properties"]["explanation"], "maxLength": max_explanation_chars}
            schema = {**schema, "properties": {**schema["properties"], "explanation": explanation}}
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": schema, "strict": True}}


# Whole-number scores: a JSON number has no length bound, and a constrained model can emit digits forever.
_SCORE = {"type": "integer", "minimum": 0, "maximum": 10}
VERDICT_KINDS = {
    kind.name: kind
    for kind in (
        VerdictKind(
            "score_pair",
            parse_score_pair,
            _schema({"score_1": _SCORE, "score_2": _SCORE}),
            _read_score_pair,
            'Reply with a JSON object: {"explanation": "...", "score_1": <score of Assistant 1>, '
            '"score_2": <score of Assistant 2>}, the explanation first.',
        ),
        VerdictKind(
            "rating",
            parse_rating,
            _schema({"rating": {"type": "integer", "minimum": 1, "maximum": 10}}),
            _read_rating,
            'Reply with a JSON object: {"explanation": "...", "rating": <1 to 10>}, the explanation first.',
        ),
        VerdictKind(
            "verdict_abc",
            parse_pairwise_verdict,
            _schema({"verdict": {"enum": ["A", "B", "C"]}}),
            _read_choice(("A", "B", "C")),
            'Reply with a JSON object: {"explanation": "...", "verdict": "A" | "B" | "C"} (C for a tie), '
            "the explanation first.",
        ),
        VerdictKind(
            "preference_ab",
            parse_preference,
            _schema({"verdict": {"enum": ["a", "b", "tie"]}}),
            _read_choice(("a", "b", "tie")),
            'Reply with a JSON object: {"explanation": "...", "verdict": "a" | "b" | "tie"}, the explanation first.',
        ),
    )
}
