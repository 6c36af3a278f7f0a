"""ShareGPT JSON dumps, read one record at a time.

ShareGPT circulates today as JSON dumps rather than saved pages: a list of records

    [{"id": "QWJhYvA", "model": "Model: GPT-4",
      "conversations": [{"from": "human", "value": "How do I reverse a list?"},
                        {"from": "gpt", "value": "<div><p>Use slicing ...</p></div>"}]}]

with values in HTML (older dumps, as scraped) or Markdown (cleaned dumps); `from` is
`human` | `gpt` | `system` (`user` / `assistant` / `chatgpt` are read as synonyms). A file
whose first character is `{` is read as JSON Lines, one record a line.

Dumps reach many gigabytes, so records are read one at a time: each is cut out of the
list by its brackets and commas and parsed on its own, and memory stays bounded by the
largest record, not the file. A record is addressed as `FILE#INDEX` (0-based), the way a
page is addressed by its file name. Every record is accounted for: one that does not
parse (a syntax error, bad UTF-8), a record nested deeper than MAX_RECORD_DEPTH, or a
JSON Lines line that does not parse is one `bad_json` entry and reading goes on; a dump
cut short, or text after its list, is one more `bad_json` entry at the next index.

`clean_sharegpt` applies the page rules to each record; a value is converted from HTML
to Markdown only when it is HTML (`value_holds_html`: it opens with a block element such
as `<div>` or `<p>`), so cleaned dumps pass through as written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from data_pipeline.sharegpt_conversation import (
    BAD_JSON,
    INVALID_ITEMS,
    PAGE_TOO_LARGE,
    PageError,
    clean_conversation,
    inspect_conversation,
    normalise_page_id,
)

DUMP_SUFFIX = ".json"

MAX_RECORD_DEPTH = 64  # a ShareGPT record nests 4 deep; deeper ones are skipped (and reported), not built

ROLE_ALIASES = {
    "human": "human",
    "user": "human",
    "gpt": "gpt",
    "assistant": "gpt",
    "chatgpt": "gpt",
    "system": "system",
}

# How a scraped answer starts: a block element (after ShareGPT's regeneration counter, if any).
# A Markdown answer that uses an inline tag somewhere (`<br>`, `<b>`) is Markdown, and stays as written.
HTML_ANSWER_START = re.compile(
    r"\s*(?:\d{1,3} / \d{1,3}){0,4}\s*<(?:p|div|pre|ol|ul|h[1-6]|table|blockquote)\b[^<>]*>",
    re.I,
)


@dataclass(frozen=True)
class DumpRecord:
    """One record of a dump, as handed to a cleaning worker; `label` is `FILE#INDEX`.

    Read with `parse=False`, a record holds its `raw` bytes instead, parsed by `parsed()` where
    it is cleaned: the reader only cuts records out, and the workers share the parsing.
    """

    label: str
    record: object = None
    raw: bytes | None = None

    def parsed(self):
        """The record; a ValueError with a one-line reason for raw bytes that are no record."""
        return self.record if self.raw is None else parse_record(self.raw)


@dataclass(frozen=True)
class BrokenRecord:
    """A record that could not be read, accounted as a dropped record with `detail`; unless
    `resumes`, the dump broke off there and nothing follows."""

    label: str
    detail: str
    resumes: bool = False


def iter_dump(path, parse=True):
    """Yield a DumpRecord per record of the dump at `path`, a BrokenRecord where one cannot be read.

    With `parse=False` records keep their bytes (`DumpRecord.raw`), and one that does not
    parse is found by whoever calls `parsed()`.

    Raises OSError if the file cannot be opened (the caller accounts for it).
    """
    path = Path(path)
    with open(path, "rb") as handle:
        first = _first_significant_byte(handle)
        handle.seek(0)
        if first == b"{":
            records = _json_lines(path, handle)
        elif first == b"[":
            records = _json_list(path, handle)
        else:
            records = None
        if records is None:
            yield BrokenRecord(f"{path.name}#0", "not a JSON list of records nor JSON Lines")
            return
        for entry in records:
            if parse and isinstance(entry, DumpRecord):
                try:
                    entry = DumpRecord(entry.label, parse_record(entry.raw))
                except ValueError as error:
                    entry = BrokenRecord(entry.label, str(error), resumes=True)
            yield entry


def parse_record(raw):
    """A record's bytes as JSON (Python's reading: NaN, Infinity, 1e400 and long integers pass, for the
    page rules to judge); a ValueError with a one-line reason when they are not JSON or nest too deep."""
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as error:  # a syntax error, bad UTF-8, over the integer digit limit
        raise ValueError(_one_line(error) or "not JSON") from None
    if nesting_exceeds(record, MAX_RECORD_DEPTH):
        raise ValueError(f"nested deeper than {MAX_RECORD_DEPTH} levels")
    return record


def _first_significant_byte(handle):
    while True:
        chunk = handle.read(4096)
        if not chunk:
            return b""
        stripped = chunk.lstrip(b" \t\r\n\xef\xbb\xbf")
        if stripped:
            return stripped[:1]


READ_CHUNK = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"
# What the splitter steps over in one regex match: bytes that cannot end an element, whole strings,
# and, inside an element, whole flat objects (a turn `{"from": ..., "value": ...}`); it stops at a
# byte that changes the nesting, at a string the buffer cuts, or (between elements) at a comma.
_STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
SKIP_BETWEEN = re.compile(rb'(?:[^"\[\]{},]++|' + _STRING + rb")*+", re.S)
SKIP_INSIDE = re.compile(rb'(?:[^"\[\]{}]++|' + _STRING + rb'|\{(?:[^"\[\]{}]++|' + _STRING + rb")*+\})*+", re.S)
SKIP_INSIDE_DEEP = re.compile(rb'(?:[^"\[\]{}]++|' + _STRING + rb")*+", re.S)  # counts every level
STRING_BODY = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+', re.S)
SIGNIFICANT_BYTE = re.compile(rb"[^ \t\r\n]")


def _json_list(path, handle):
    """The records of a JSON list as raw DumpRecords, each cut out by its brackets and commas.

    Cutting needs only the bytes' structure (brackets, commas, strings), not their values, so
    a record the parser refuses costs that record alone, and reading goes on with the next.
    A record nested deeper than MAX_RECORD_DEPTH is a BrokenRecord, never parsed. A
    byte-order mark before the list is skipped; a second list after the first (`cat a.json
    b.json`) is read on, its records numbered on; any other text after a list, or a list cut
    short, is one BrokenRecord at the next index.
    """
    splitter = _ListSplitter(handle)
    index = 0
    for raw, too_deep in splitter.elements():
        label = f"{path.name}#{index}"
        index += 1
        if too_deep:
            yield BrokenRecord(label, f"nested deeper than {MAX_RECORD_DEPTH} levels", resumes=True)
        else:
            yield DumpRecord(label, raw=raw)
    if splitter.problem is not None:
        yield BrokenRecord(f"{path.name}#{index}", splitter.problem)


class _ListSplitter:
    """The elements of the top-level JSON lists of a byte stream, as bytes, one held at a time.

    `self.start` is where the element being cut begins in `self.buffer`; reading on drops the
    bytes before it. Once `elements()` is exhausted, `problem` says why it stopped early (None:
    the file ended after a complete list).
    """

    def __init__(self, handle):
        self.handle = handle
        self.buffer = b""
        self.start = 0
        self.eof = False
        self.problem = None

    def _read_on(self):
        """Drop the bytes before `start`, append the next chunk; how far positions moved, or None at the end."""
        if self.eof:
            return None
        kept = self.buffer[self.start :]
        chunk = self.handle.read(max(READ_CHUNK, len(kept)))  # doubling: a huge record is read in linear time
        if not chunk:
            self.eof = True
            return None
        shift, self.buffer, self.start = self.start, kept + chunk, 0
        return shift

    def _significant(self, position):
        """Where the next non-whitespace byte is, reading on as needed; None at the end of the file."""
        while True:
            found = SIGNIFICANT_BYTE.search(self.buffer, position)
            if found is not None:
                return found.start()
            self.start = len(self.buffer)
            if self._read_on() is None:
                return None
            position = 0

    def elements(self):
        """Yield `(element bytes, nested too deep)` for every element of every list in the stream."""
        position = self._significant(0)
        if position is not None and self.buffer.startswith(UTF8_BOM, position):
            position = self._significant(position + len(UTF8_BOM))
        while position is not None:
            if self.buffer[position : position + 1] != b"[":
                self.problem = "text after the end of the list: " + _preview(self.buffer[position : position + 60])
                return
            position = yield from self._one_list(position + 1)
            if position is not None:
                position = self._significant(position)

    def _one_list(self, position):
        """Elements of the list whose `[` precedes `position`; returns the position after its `]`, None if cut."""
        self.start, depth, deepest, after_comma = position, 0, 0, False
        while True:
            skip = SKIP_BETWEEN if not depth else SKIP_INSIDE if depth < MAX_RECORD_DEPTH else SKIP_INSIDE_DEEP
            position = skip.match(self.buffer, position).end()
            if position == len(self.buffer):
                shift = self._read_on()
                if shift is None:
                    return self._cut_short()
                position -= shift
                continue
            byte = self.buffer[position : position + 1]
            position += 1
            if byte == b'"':  # a string the buffer cut
                position = self._after_string(position)
                if position is None:
                    return self._cut_short()
            elif byte in b"[{":
                depth += 1
                deepest = max(deepest, depth)
            elif depth:
                depth -= 1
            else:  # a comma or the list's closing bracket: the element ends here
                element = self.buffer[self.start : position - 1]
                if byte == b"," or after_comma or element.strip():
                    yield element, deepest > MAX_RECORD_DEPTH
                if byte != b",":
                    return position
                self.start, deepest, after_comma = position, 0, True

    def _after_string(self, position):
        """The position after the closing quote of a string whose body starts at `position`; None if cut."""
        while True:
            end = STRING_BODY.match(self.buffer, position).end()
            if end < len(self.buffer) and self.buffer[end] == ord('"'):
                return end + 1
            shift = self._read_on()  # the buffer ended inside the string (or between a backslash and its byte)
            if shift is None:
                return None
            position = end - shift

    def _cut_short(self):
        cut = self.buffer[self.start :].strip()
        self.problem = "the dump ends in the middle of a record" if cut else "the dump ends before its list is closed"
        return None


def _preview(data):
    return repr(data.decode("utf-8", "backslashreplace"))


def _json_lines(path, handle):
    """The records of a JSON Lines file as raw DumpRecords, one a non-blank line."""
    index = 0
    for line in handle:
        if not line.strip():
            continue
        yield DumpRecord(f"{path.name}#{index}", raw=line)
        index += 1


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
    """True when `text` is an answer as scraped, in HTML: it opens with a block element.

    Only such answers go through the HTML converter: a Markdown answer with one inline tag
    would lose its blank lines, its code indentation and any `a<b and b>c` text there.
    """
    return HTML_ANSWER_START.match(text) is not None


def inspect_record(dump_record, blocked_words, max_page_bytes):
    """`(conversation, None, "")` or `(None, reason, detail)` for one dump record, by the page rules.

    As `sharegpt_page.inspect_page` does for a page: no exception passes. Leading
    `system` turns are not part of the dialogue and go; a gpt value is converted from
    HTML only when it holds HTML. A record without an id takes its `FILE#INDEX` label.
    """
    return inspect_conversation(build_record_conversation, dump_record, blocked_words, max_page_bytes)


def build_record_conversation(dump_record, blocked_words, max_page_bytes):
    try:
        record = dump_record.parsed()
    except ValueError as error:
        raise PageError(BAD_JSON, str(error)) from None
    turns = record.get("conversations", record.get("items")) if isinstance(record, dict) else None
    if not isinstance(turns, list) or not all(
        isinstance(turn, dict) and isinstance(turn.get("from"), str) and isinstance(turn.get("value"), str)
        for turn in turns
    ):
        raise PageError(INVALID_ITEMS)
    size = sum(len(turn["value"]) for turn in turns)
    if size > max_page_bytes:
        raise PageError(PAGE_TOO_LARGE, f"{size} characters, limit {max_page_bytes}")
    items = [{"from": ROLE_ALIASES.get(turn["from"].lower(), turn["from"]), "value": turn["value"]} for turn in turns]
    while items and items[0]["from"] == "system":
        items = items[1:]
    record_id = normalise_page_id(record.get("id"), None) or dump_record.label
    model = record.get("model")
    model = model if isinstance(model, str) else None
    return clean_conversation(
        record_id, model, record.get("views"), items, blocked_words, convert_html=value_holds_html
    )
