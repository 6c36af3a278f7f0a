"""The dominant language of a conversation, for `clean_sharegpt --languages en,zh`.

py3langid (a maintained langid.py: naive Bayes over byte n-grams; its model ships inside
the package, nothing is downloaded) classifies the conversation's
whole text with code looked past: fenced code blocks and inline code are English-looking
noise in any language's chat. Longer turns weigh more, as the classifier counts n-grams
over the joined text. A conversation with no prose at all is `und` (undetermined).

It was chosen over lingua and fastText by measurement (`benchmarks/language_id.py`):
as accurate as the best on whole sentences, the most accurate on four-word fragments,
and 10-100x faster; fasttext-langdetect downloads its model at first use.
"""

from __future__ import annotations

import re

from py3langid.langid import _get_identifier

UNDETERMINED = "und"
LANGUAGE_REASON_PREFIX = "language:"

URL = re.compile(r"https?://\S+")


def prose_text(items):
    """A conversation's text without fenced or inline code and URLs (linear: splits on backticks)."""
    text = "\n".join(item["value"] for item in items)
    outside_fences = text.split("```")[::2]
    prose = " ".join(part for fenced in outside_fences for part in fenced.split("`")[::2])
    return URL.sub(" ", prose)


def dominant_language(items):
    """ISO 639-1 code of the conversation's dominant language, or `und` when it holds no prose."""
    text = prose_text(items)
    if not any(character.isalpha() for character in text):
        return UNDETERMINED
    language, _score = _get_identifier().classify(text)
    return language


def known_languages():
    return set(_get_identifier().nb_classes)


def parse_languages(spec):
    """`"en,zh"` -> `("en", "zh")`; raises ValueError naming an unknown code."""
    languages = tuple(dict.fromkeys(code.strip().lower() for code in spec.split(",") if code.strip()))
    if not languages:
        raise ValueError("--languages needs at least one language code, e.g. en,zh")
    unknown = [code for code in languages if code not in known_languages() and code != UNDETERMINED]
    if unknown:
        raise ValueError(f"unknown language code(s) {', '.join(unknown)}: use ISO 639-1 codes such as en, zh, es")
    return languages


def language_reason(language):
    return LANGUAGE_REASON_PREFIX + language
