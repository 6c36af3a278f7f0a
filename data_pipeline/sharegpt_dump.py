"""ShareGPT JSON dumps, read one record at a time.

ShareGPT circulates today as JSON dumps rather than saved pages: a list of records

    [{"id": "QWJhYvA", "model": "Model: GPT-4",
      "conversations": [{"from": "human", "value": "How do I reverse a list?"},
                        {"from": "gpt", "value": "<div><p>Use slicing ...</p></div>"}]}]

with values in HTML (older dumps, as scraped) or Markdown (cleaned dumps); `from` is
`human` | `gpt` | `system` (`user` / `assistant` / `chatgpt` are read as synonyms). A file
whose first character is `{` is read as JSON Lines, one record a line.

Dumps reach many gigabytes, so records are parsed incrementally (ijson's C backend):
memory stays bounded by the largest record, not the file. A record is addressed as
`FILE#INDEX` (0-based), the way a page is addressed by its file name; a dump that breaks
off mid-way yields one `bad_json` entry at the index where it broke and stops; a record
nested deeper than MAX_RECORD_DEPTH (or a JSON Lines line that does not parse) is one
`bad_json` entry and reading goes on.

`clean_sharegpt` applies the page rules to each record; a value is converted from HTML
to Markdown only when it holds HTML (`value_holds_html`), so cleaned dumps pass through
as written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import ijson

DUMP_SUFFIX = ".json"

# Reasons a record is dropped before the page rules apply, as they appear in the report.
INVALID_RECORD = "invalid_record"
BAD_JSON = "bad_json"
MAX_RECORD_DEPTH = 64  # a ShareGPT record nests 4 deep; deeper ones are skipped (and reported), not built

ROLE_ALIASES = {
    "human": "human",
    "user": "human",
    "gpt": "gpt",
    "assistant": "gpt",
    "chatgpt": "gpt",
    "system": "system",
}

# Tags an HTML answer is made of; Markdown mentions them only inside code, which is looked past.
HTML_TAG = re.compile(
    r"<(?:p|div|pre|code|ol|ul|li|h[1-6]|table|thead|tbody|tr|td|th|blockquote|br|hr|strong|em|b|i|a|span|img)"
    r"\b[^<>]*>",
    re.I,
)


@dataclass(frozen=True)
class DumpRecord:
    """One record of a dump, as handed to a cleaning worker; `label` is `FILE#INDEX`."""

    label: str
    record: object


@dataclass(frozen=True)
class BrokenRecord:
    """A record that could not be read, accounted as a dropped record with `detail`; unless
    `resumes`, the dump broke off there and nothing follows."""

    label: str
    detail: str
    resumes: bool = False


def iter_dump(path):
    """Yield a DumpRecord per record of the dump at `path`, then a BrokenRecord if it breaks off.

    Raises OSError if the file cannot be opened (the caller accounts for it).
    """
    path = Path(path)
    with open(path, "rb") as handle:
        first = _first_significant_byte(handle)
        handle.seek(0)
        if first == b"{":
            yield from _iter_json_lines(path, handle)
        elif first == b"[":
            yield from _iter_json_list(path, handle)
        else:
            yield BrokenRecord(f"{path.name}#0", "not a JSON list of records nor JSON Lines")


def _first_significant_byte(handle):
    while True:
        chunk = handle.read(4096)
        if not chunk:
            return b""
        stripped = chunk.lstrip(b" \t\r\n\xef\xbb\xbf")
        if stripped:
            return stripped[:1]


def _iter_json_list(path, handle):
    """Records of a JSON list, built from the parser's events so that nesting can be bounded.

    (ijson's `items` keeps a path string per level, so a record nested 100,000 deep would
    take gigabytes; here a record deeper than MAX_RECORD_DEPTH is skipped, reported, and
    costs nothing to build.)
    """
    index = depth = 0
    builder, too_deep = None, False
    try:
        events = ijson.basic_parse(handle, use_float=True)
        next(events)  # the list's own start
        for event, value in events:
            if event in ("start_map", "start_array"):
                depth += 1
                too_deep = too_deep or depth > MAX_RECORD_DEPTH
            elif event in ("end_map", "end_array"):
                depth -= 1
                if depth < 0:  # the end of the list
                    return
            if not too_deep:
                builder = builder or ijson.ObjectBuilder()
                builder.event(event, value)
            if depth == 0:
                label = f"{path.name}#{index}"
                if too_deep:
                    yield BrokenRecord(label, f"nested deeper than {MAX_RECORD_DEPTH} levels", resumes=True)
                else:
                    yield DumpRecord(label, builder.value)
                index += 1
                builder, too_deep = None, False
    except (ijson.JSONError, ValueError, UnicodeDecodeError, StopIteration) as error:
        yield BrokenRecord(f"{path.name}#{index}", _one_line(error) or "the dump ends early")


def _iter_json_lines(path, handle):
    index = 0
    for line in handle:
        if not line.strip():
            continue
        label = f"{path.name}#{index}"
        index += 1
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            yield BrokenRecord(label, _one_line(error), resumes=True)
            continue
        if nesting_exceeds(record, MAX_RECORD_DEPTH):
            yield BrokenRecord(label, f"nested deeper than {MAX_RECORD_DEPTH} levels", resumes=True)
        else:
            yield DumpRecord(label, record)


def nesting_exceeds(value, limit):
    """True when containers nest deeper than `limit` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
    return False


def _one_line(error):
    return " ".join(str(error).split())[:200]


def record_turns(record):
    """(id, model, views, items) of a dump record, roles normalised; None for a record of the wrong shape.

    Unknown roles are kept as written, so the page rules name them.
    """
    if not isinstance(record, dict):
        return None
    turns = record.get("conversations", record.get("items"))
    if not isinstance(turns, list) or not all(
        isinstance(turn, dict) and isinstance(turn.get("from"), str) and isinstance(turn.get("value"), str)
        for turn in turns
    ):
        return None
    items = [{"from": ROLE_ALIASES.get(turn["from"].lower(), turn["from"]), "value": turn["value"]} for turn in turns]
    record_id = record.get("id")
    model = record.get("model")
    views = record.get("views")
    return (
        record_id if isinstance(record_id, str) and record_id else None,
        model if isinstance(model, str) else None,
        views if isinstance(views, int) and not isinstance(views, bool) else None,
        items,
    )


def value_holds_html(text):
    """True when `text` carries HTML markup outside code: an old dump's answer, not a cleaned one.

    Fenced and inline code are looked past (a Markdown answer about HTML shows its tags
    there). Splitting on backticks keeps this linear in the text's length.
    """
    outside_fences = text.split("```")[::2]
    outside_code = (part for fenced in outside_fences for part in fenced.split("`")[::2])
    return any(HTML_TAG.search(part) for part in outside_code)


def inspect_record(dump_record, blocked_words, max_page_bytes):
    """`(conversation, None, "")` or `(None, reason, detail)` for one dump record, by the page rules.

    As `clean_sharegpt.inspect_page` does for a page: no exception passes. Leading
    `system` turns are not part of the dialogue and go; a gpt value is converted from
    HTML only when it holds HTML. A record without an id takes its `FILE#INDEX` label.
    """
    from data_pipeline import clean_sharegpt as clean  # clean_sharegpt imports this module

    try:
        return build_record_conversation(clean, dump_record, blocked_words, max_page_bytes), None, ""
    except clean.PageError as error:
        return None, error.reason, clean.printable(error.detail)
    except Exception as error:  # a failure no rule foresaw still drops only this record
        return None, f"error:{type(error).__name__}", clean.printable(str(error))


def build_record_conversation(clean, dump_record, blocked_words, max_page_bytes):
    record = dump_record.record
    turns = record.get("conversations", record.get("items")) if isinstance(record, dict) else None
    if not isinstance(turns, list) or not all(
        isinstance(turn, dict) and isinstance(turn.get("from"), str) and isinstance(turn.get("value"), str)
        for turn in turns
    ):
        raise clean.PageError(clean.INVALID_ITEMS)
    size = sum(len(turn["value"]) for turn in turns)
    if size > max_page_bytes:
        raise clean.PageError(clean.PAGE_TOO_LARGE, f"{size} characters, limit {max_page_bytes}")
    items = [{"from": ROLE_ALIASES.get(turn["from"].lower(), turn["from"]), "value": turn["value"]} for turn in turns]
    while items and items[0]["from"] == "system":
        items = items[1:]
    record_id = clean.normalise_page_id(record.get("id"), None) or dump_record.label
    views = clean.normalise_views(record.get("views"))
    model = record.get("model")
    model = model if isinstance(model, str) else None
    if model is not None:
        clean.require_encodable(model, "the model label")
    items = clean.clean_items(items, clean.compile_blocked_words(blocked_words), convert_html=value_holds_html)
    try:
        digest = clean.conversation_hash(items)
    except UnicodeEncodeError:
        raise clean.PageError(clean.INVALID_UNICODE, "a lone surrogate in a turn") from None
    return {"id": record_id, "model": model, "views": views, "items": items, "hash": digest}


def record_from_page(page_bytes):
    """The dump record a saved page holds (values as the page has them, HTML), or None for a broken page.

    Lets pages and dumps be compared, and turns a folder of pages into a dump.
    """
    from data_pipeline import clean_sharegpt as clean

    try:
        page_id, model, views, items = clean.read_conversation(page_bytes)
    except clean.PageError:
        return None
    return {"id": page_id, "model": model, "views": views, "conversations": items}
