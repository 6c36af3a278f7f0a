"""The clean conversation both ShareGPT readers build, pages (`sharegpt_page`) and dump records (`sharegpt_dump`).

A reader pulls `(id, model, views, turns)` out of its source; `clean_conversation` applies the
rules every source shares (turn shape, Markdown, empty turns, blocked words, text UTF-8 can write)
and builds the record of the clean-conversation contract:

    {"id": "Ab3xY9z", "model": "Model: GPT-4", "views": 42,
     "items": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}], "hash": "3f1c...e9"}

A source that breaks a rule raises `PageError`, whose reason is one of `DROP_REASONS`, as the report names it.
"""

import hashlib
import json
import math
import os
import re
import reprlib
import unicodedata
from pathlib import Path

from data_pipeline.sharegpt_markdown import clean_markdown, html_to_markdown, strip_regeneration_counter

DEFAULT_BLOCKED_WORDS = ("openai",)
MAX_VIEWS = 2**63 - 1
VIEW_COUNT_TEXT = re.compile(r"[0-9]{1,18}")

# Reasons a page is dropped, as they appear in the report.
UNREADABLE_FILE = "unreadable_file"
NOT_REGULAR_FILE = "not_regular_file"
PAGE_TOO_LARGE = "page_too_large"
UNDECODABLE_BYTES = "undecodable_bytes"
NO_NEXT_DATA = "no_next_data"
INVALID_JSON = "invalid_json"
NO_CONTENT = "no_content"
INVALID_ITEMS = "invalid_items"
INVALID_ID = "invalid_id"
INVALID_VIEWS = "invalid_views"
UNKNOWN_ROLE = "unknown_role"
UNPARSEABLE_MARKUP = "unparseable_markup"
TOO_FEW_TURNS = "too_few_turns"
ROLES_NOT_ALTERNATING = "roles_not_alternating"
EMPTY_TURN = "empty_turn"
BLOCKED_WORD = "blocked_word"
INVALID_UNICODE = "invalid_unicode"
DUPLICATE_ID = "duplicate_id"
TIMEOUT = "timeout"
WORKER_CRASHED = "worker_crashed"
UNFORESEEN_ERROR = "error:"  # + the exception's type name: a failure no rule above foresaw
BAD_JSON = "bad_json"  # a dump record that cannot be read, or where a dump breaks off
DROP_REASONS = (
    UNREADABLE_FILE,
    NOT_REGULAR_FILE,
    PAGE_TOO_LARGE,
    UNDECODABLE_BYTES,
    NO_NEXT_DATA,
    INVALID_JSON,
    NO_CONTENT,
    INVALID_ITEMS,
    INVALID_ID,
    INVALID_VIEWS,
    UNKNOWN_ROLE,
    TOO_FEW_TURNS,
    ROLES_NOT_ALTERNATING,
    UNPARSEABLE_MARKUP,
    EMPTY_TURN,
    BLOCKED_WORD,
    INVALID_UNICODE,
    DUPLICATE_ID,
    TIMEOUT,
    WORKER_CRASHED,
    UNFORESEEN_ERROR,
    BAD_JSON,
)

# Characters that print as nothing (zero-width spaces and joiners, soft hyphen, BOM, bidi and tag
# controls): looked past, after NFKC, by the empty-turn and blocked-word checks.
INVISIBLE_CHARACTERS = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000e0000-\U000e0fff]"
)


class PageError(Exception):
    """A page that cannot yield a conversation; `reason` names why, `detail` says more, both for the report."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def clean_conversation(conversation_id, model, views, items, blocked_words, convert_html=None):
    """The clean record of a conversation read from a page or a dump record; raises PageError to drop it.

    `conversation_id` is already normalised (`normalise_page_id`); `convert_html` as in `clean_items`.
    """
    views = normalise_views(views)
    if model is not None:
        require_encodable(model, "the model label")
    items = clean_items(items, compile_blocked_words(blocked_words), convert_html)
    try:
        digest = conversation_hash(items)
    except UnicodeEncodeError:
        raise PageError(INVALID_UNICODE, "a lone surrogate in a turn") from None
    return {"id": conversation_id, "model": model, "views": views, "items": items, "hash": digest}


def inspect_conversation(build, *args):
    """`(conversation, None, "")` or `(None, reason, detail)` from `build(*args)`: the boundary where no exception
    passes, so one page or record that fails drops itself alone."""
    try:
        return build(*args), None, ""
    except PageError as error:
        return None, error.reason, printable(error.detail)
    except Exception as error:  # a failure no rule foresaw still drops only this page or record
        return None, UNFORESEEN_ERROR + type(error).__name__, printable(str(error))


def clean_items(items, blocked_pattern, convert_html=None):
    """Apply the turn-shape, Markdown and blocked-word rules; raises PageError to drop.

    `convert_html(value)` says whether an assistant value is HTML (default: always, as on a page).
    A conversation with an HTML answer is as the site rendered it, regeneration counters included.
    """
    roles = [item["from"] for item in items]
    unknown_roles = sorted(set(roles) - {"human", "gpt"})
    if unknown_roles:
        raise PageError(UNKNOWN_ROLE, ", ".join(map(repr, unknown_roles)))
    start = 1 if roles and roles[0] != "human" else 0
    end = len(roles) - 1 if len(roles) > start and roles[-1] == "human" else len(roles)
    items = items[start:end]
    if len(items) < 2:
        raise PageError(TOO_FEW_TURNS)
    if any(item["from"] != ("human" if index % 2 == 0 else "gpt") for index, item in enumerate(items)):
        raise PageError(ROLES_NOT_ALTERNATING)

    scraped = convert_html is None or any(item["from"] == "gpt" and convert_html(item["value"]) for item in items)
    cleaned = []
    for item in items:
        value = clean_turn_value(item["from"], item["value"], convert_html, scraped)
        folded = text_for_checks(value)
        if not folded.strip():
            raise PageError(EMPTY_TURN)
        if blocked_pattern is not None and blocked_pattern.search(folded):
            raise PageError(BLOCKED_WORD)
        cleaned.append({"from": item["from"], "value": value})
    return cleaned


def clean_turn_value(role, value, convert_html=None, scraped=True):
    """Markdown for one turn: assistant HTML is converted, human text kept as typed.

    A `scraped` turn is as the site rendered it (every turn of a page, or of a dump record
    whose answers are HTML), so its leading regeneration counter goes; text written as
    Markdown keeps its `10 / 2 = 5`.
    """
    if scraped:
        value = strip_regeneration_counter(value)
    if role == "gpt" and (convert_html is None or convert_html(value)):
        try:
            value = html_to_markdown(value)
        except Exception as error:  # markup the parser rejects must drop the page, not the run
            raise PageError(UNPARSEABLE_MARKUP, repr(error)) from None
    return clean_markdown(value)


def text_for_checks(text):
    """The text as the empty-turn and blocked-word rules see it: NFKC (fullwidth `ｏｐｅｎａｉ` is `openai`)
    and without characters that print as nothing (`open\u200bai`, a turn of `\u200b` alone)."""
    return INVISIBLE_CHARACTERS.sub("", unicodedata.normalize("NFKC", text))


def compile_blocked_words(blocked_words):
    """One case-insensitive pattern of the words as `text_for_checks` writes them."""
    words = [text_for_checks(word) for word in blocked_words if text_for_checks(word)]
    if not words:
        return None
    return re.compile("|".join(re.escape(word) for word in words), re.I)


def conversation_hash(items):
    """sha256 of the cleaned turns: stable across processes and runs, unlike hash()."""
    canonical = json.dumps([[item["from"], item["value"]] for item in items], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def normalise_page_id(page_id, source):
    """The page's id as a string: an integer id is written as text; no id falls back to the file name."""
    if page_id is None or page_id == "":
        return display_name(Path(source).stem) if isinstance(source, (str, os.PathLike)) else None
    if isinstance(page_id, int) and not isinstance(page_id, bool):
        return str(page_id)
    if not isinstance(page_id, str):
        raise PageError(INVALID_ID, describe(page_id))
    require_encodable(page_id, "the id")
    return page_id


def normalise_views(views):
    """A view count is a non-negative integer or null; 42.0 and "42" read as 42, anything else drops the page."""
    if views is None:
        return None
    if isinstance(views, float) and math.isfinite(views) and views.is_integer():
        views = int(views)
    elif isinstance(views, str) and VIEW_COUNT_TEXT.fullmatch(views):
        views = int(views)
    if isinstance(views, int) and not isinstance(views, bool) and 0 <= views <= MAX_VIEWS:
        return views
    raise PageError(INVALID_VIEWS, describe(views))


def require_encodable(text, what):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PageError(INVALID_UNICODE, f"a lone surrogate in {what}") from None


def describe(value):
    """A short, writable description of an unexpected value for the report."""
    return f"{type(value).__name__} {printable(reprlib.repr(value))}"


def display_name(name):
    """A file name as text: bytes that are not UTF-8 (kept by Python as lone surrogates) written as `\\xff`."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def printable(text, limit=300):
    """Text safe to write as UTF-8 JSON (lone surrogates escaped), cut to `limit` characters."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]
