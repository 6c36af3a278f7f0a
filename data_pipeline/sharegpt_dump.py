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
off mid-way yields one `bad_json` entry at the index where it broke and stops.

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

ROLE_ALIASES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt", "chatgpt": "gpt",
                "system": "system"}

# Tags an HTML answer is made of; Markdown mentions them only inside code, which is looked past.
HTML_TAG = re.compile(
    r"<(?:p|div|pre|code|ol|ul|li|h[1-6]|table|thead|tbody|tr|td|th|blockquote|br|hr|strong|em|b|i|a|span|img)"
    r"\b[^<>]*>", re.I)


@dataclass(frozen=True)
class DumpRecord:
    """One record of a dump, as handed to a cleaning worker; `label` is `FILE#INDEX`."""

    label: str
    record: object


@dataclass(frozen=True)
class BrokenRecord:
    """Where a dump stopped parsing; accounted as a dropped record with `detail`."""

    label: str
    detail: str


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
    index = 0
    try:
        for record in ijson.items(handle, "item", use_float=True):
            yield DumpRecord(f"{path.name}#{index}", record)
            index += 1
    except (ijson.JSONError, ValueError, UnicodeDecodeError) as error:  # yajl's IncompleteJSONError is a JSONError
        yield BrokenRecord(f"{path.name}#{index}", _one_line(error))


def _iter_json_lines(path, handle):
    index = 0
    for line in handle:
        if not line.strip():
            continue
        label = f"{path.name}#{index}"
        index += 1
        try:
            yield DumpRecord(label, json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            yield BrokenRecord(label, _one_line(error))


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
            for turn in turns):
        return None
    items = [{"from": ROLE_ALIASES.get(turn["from"].lower(), turn["from"]), "value": turn["value"]} for turn in turns]
    record_id = record.get("id")
    model = record.get("model")
    views = record.get("views")
    return (record_id if isinstance(record_id, str) and record_id else None,
            model if isinstance(model, str) else None,
            views if isinstance(views, int) and not isinstance(views, bool) else None,
            items)


def value_holds_html(text):
    """True when `text` carries HTML markup outside code: an old dump's answer, not a cleaned one.

    Fenced and inline code are looked past (a Markdown answer about HTML shows its tags
    there). Splitting on backticks keeps this linear in the text's length.
    """
    outside_fences = text.split("```")[::2]
    outside_code = (part for fenced in outside_fences for part in fenced.split("`")[::2])
    return any(HTML_TAG.search(part) for part in outside_code)
