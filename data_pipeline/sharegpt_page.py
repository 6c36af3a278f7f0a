"""One saved ShareGPT page (`*.html`) as a clean conversation.

The conversation is the JSON inside the page's own `<script id="__NEXT_DATA__">`, at
`props.pageProps.content.items` (`[{"from": "human"|"gpt", "value": str}]`, values as the site
rendered them, HTML), with `props.pageProps.id`, `.views` and `content.model` beside it; the
rules of `sharegpt_conversation` turn it into the clean record. Every pattern runs in linear time.

    clean_page(path_or_bytes) -> (conversation | None, reason)
    inspect_page(path_or_bytes) -> (conversation | None, reason, detail)
"""

import errno
import json
import os
import re
import stat

from data_pipeline.sharegpt_conversation import (
    DEFAULT_BLOCKED_WORDS,
    INVALID_ITEMS,
    INVALID_JSON,
    NO_CONTENT,
    NO_NEXT_DATA,
    NOT_REGULAR_FILE,
    PAGE_TOO_LARGE,
    UNDECODABLE_BYTES,
    UNREADABLE_FILE,
    PageError,
    clean_conversation,
    inspect_conversation,
    normalise_page_id,
)

DEFAULT_MAX_PAGE_BYTES = 32 * 1024 * 1024
COMMENT_OR_SCRIPT = re.compile(r"<!--|<script\b", re.I)
START_TAG_REST = re.compile(r"[^<>]*>")
NEXT_DATA_ID = re.compile(r"""\bid\s*=\s*["']?__NEXT_DATA__""", re.I)
SCRIPT_END = re.compile(r"</script\s*>", re.I)


def clean_page(source, blocked_words=DEFAULT_BLOCKED_WORDS, max_page_bytes=DEFAULT_MAX_PAGE_BYTES):
    """Clean one page (a path or the page's bytes).

    Returns `(conversation, None)` for a kept page or `(None, reason)` for a
    dropped one; never raises for bad page content.
    """
    conversation, reason, _ = inspect_page(source, blocked_words, max_page_bytes)
    return conversation, reason


def inspect_page(source, blocked_words=DEFAULT_BLOCKED_WORDS, max_page_bytes=DEFAULT_MAX_PAGE_BYTES):
    """`(conversation, None, "")` or `(None, reason, detail)`: the page boundary, where no exception passes."""
    return inspect_conversation(build_conversation, source, blocked_words, max_page_bytes)


def build_conversation(source, blocked_words, max_page_bytes):
    page_bytes = read_page_bytes(source, max_page_bytes)
    page_id, model, views, items = read_conversation(page_bytes)
    return clean_conversation(normalise_page_id(page_id, source), model, views, items, blocked_words)


def read_conversation(page_bytes):
    """Pull (id, model, views, raw items) out of a page's __NEXT_DATA__ JSON."""
    try:
        page_text = page_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PageError(UNDECODABLE_BYTES, str(error)) from None
    json_text = find_next_data(page_text)
    if json_text is None:
        raise PageError(NO_NEXT_DATA)
    next_data = parse_json(json_text)
    props = next_data.get("props") if isinstance(next_data, dict) else None
    page_props = props.get("pageProps") if isinstance(props, dict) else None
    content = page_props.get("content") if isinstance(page_props, dict) else None
    if not isinstance(content, dict) or "items" not in content:
        raise PageError(NO_CONTENT)
    items = content["items"]
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and isinstance(item.get("from"), str) and isinstance(item.get("value"), str)
        for item in items
    ):
        raise PageError(INVALID_ITEMS)
    model = content.get("model")
    return page_props.get("id"), model if isinstance(model, str) else None, page_props.get("views"), items


def record_from_page(page_bytes):
    """The dump record a saved page holds (values as the page has them, HTML), or None for a broken page.

    Lets pages and dumps be compared, and turns a folder of pages into a dump.
    """
    try:
        page_id, model, views, items = read_conversation(page_bytes)
    except PageError:
        return None
    return {"id": page_id, "model": model, "views": views, "conversations": items}


# ----------------------------------------------------------------------------- hostile pages
# What a saved page can do to a reader besides being malformed: be no file at all
# (a FIFO, a device, a folder), be huge, hide its data in comments, hold JSON that
# Python refuses (integers over its digit limit, nesting past the recursion limit),
# text that UTF-8 cannot encode (lone surrogates), or metadata of the wrong type.


def read_page_bytes(source, max_page_bytes=DEFAULT_MAX_PAGE_BYTES):
    """A page's bytes, read only from a regular file and only up to `max_page_bytes`.

    Opened non-blocking, so a FIFO cannot stall the open; a FIFO, device or
    socket is refused before any read (a symlink to /dev/zero would never end).
    """
    if not isinstance(source, (str, os.PathLike)):
        if len(source) > max_page_bytes:
            raise PageError(PAGE_TOO_LARGE, f"{len(source)} bytes, limit {max_page_bytes}")
        return bytes(source)
    try:
        descriptor = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise PageError(UNREADABLE_FILE, error.strerror or str(error)) from None
    try:
        status = os.fstat(descriptor)
        mode, size = status.st_mode, status.st_size
        if stat.S_ISDIR(mode):
            raise PageError(UNREADABLE_FILE, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(mode):
            raise PageError(NOT_REGULAR_FILE, file_kind(mode))
        if size > max_page_bytes:
            raise PageError(PAGE_TOO_LARGE, f"{size} bytes, limit {max_page_bytes}")
        chunks, length = [], 0
        while length <= max_page_bytes:
            chunk = os.read(descriptor, max(size, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            length += len(chunk)
        if length > max_page_bytes:  # the file grew while being read
            raise PageError(PAGE_TOO_LARGE, f"over {max_page_bytes} bytes")
        return b"".join(chunks)
    except OSError as error:
        raise PageError(UNREADABLE_FILE, error.strerror or str(error)) from None
    finally:
        os.close(descriptor)


def file_kind(mode):
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def find_next_data(page_text):
    """The text inside the page's own `<script id="__NEXT_DATA__">`, or None.

    Comments and the bodies of other scripts are stepped over (a `__NEXT_DATA__`
    quoted there is not the page's); a script whose closing tag is missing runs
    to the end of the page, so a truncated page reads as broken JSON. Linear:
    every search resumes after the last one.
    """
    position = 0
    while True:
        found = COMMENT_OR_SCRIPT.search(page_text, position)
        if found is None:
            return None
        if found.group() == "<!--":
            comment_end = page_text.find("-->", found.end())
            if comment_end < 0:
                return None
            position = comment_end + 3
            continue
        start_tag_rest = START_TAG_REST.match(page_text, found.end())
        if start_tag_rest is None:
            position = found.end()
            continue
        body_start = start_tag_rest.end()
        closing = SCRIPT_END.search(page_text, body_start)
        body_end = closing.start() if closing is not None else len(page_text)
        if NEXT_DATA_ID.search(page_text, found.end(), body_start):
            return page_text[body_start:body_end]
        if closing is None:
            return None
        position = closing.end()


def parse_json(json_text):
    """JSON the page holds; what Python's parser refuses (not only syntax errors) is `invalid_json`."""
    try:
        return json.loads(json_text)
    except RecursionError:
        raise PageError(INVALID_JSON, "nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, or an integer over Python's int-string digit limit
        raise PageError(INVALID_JSON, str(error)) from None
