"""Clean saved ShareGPT pages and ShareGPT JSON dumps into conversations ready for training.

Reads every `*.html` page and `*.json` dump in `--in_dir` (sorted by file name;
or one file, `--in_file`), takes the conversation from the page's
`<script id="__NEXT_DATA__">` JSON or from each dump record
(`data_pipeline.sharegpt_dump`), turns the assistant's HTML into Markdown and keeps
only well-formed, non-duplicate conversations. Human turns are plain text as typed;
assistant turns are HTML (in a dump, converted only where a value holds HTML).

Rules, in the order they are applied to a page:

1. the page must be a regular file of at most `--max_page_bytes` (a FIFO, a
   device, a folder is dropped unread), decode as UTF-8, and hold, outside
   HTML comments, `__NEXT_DATA__` whose JSON Python can read (a 5,000-digit
   integer or nesting past the recursion limit is `invalid_json`) with a
   `props.pageProps.content.items` list of `{"from": str, "value": str}`;
   the id (a string; an integer is written as text; none: the file name) and
   the view count (an integer >= 0 or null; `42.0` and `"42"` read as 42) are
   checked, NaN and Infinity never pass;
2. roles other than `human` / `gpt` drop the page; a leading non-human turn
   and a trailing human turn are dropped; fewer than 2 turns left, or roles
   not alternating human/gpt, drops the page;
3. assistant HTML -> Markdown (markdownify, div/span wrappers stripped so code
   keeps its indentation and underscores); `LANGCopy code` code-block headers
   become fenced blocks with the language; the `N / M` regeneration counter
   glued to the start of a turn as the site renders it (on a page, or in a
   dump record whose answers are HTML), `CopyN chars / M words` noise and empty code
   blocks are removed; runs of blank lines outside code collapse to one;
4. a turn left empty, or any turn containing a blocked word (case-insensitive,
   default `openai`), drops the page; both checks read the text after NFKC and
   without characters that print as nothing (`ｏｐｅｎａｉ`, `open\\u200bai`, a turn
   of `\\u200b` alone); so does text UTF-8 cannot write (a lone surrogate such
   as `\\ud800`);
5. exact duplicates (same sha256 of the cleaned turns) are dropped; the first
   page in sorted file order wins; so is a different conversation under an id
   already kept (`duplicate_id`: ids `0` and `"0"` are both "0");
6. optional (`data_pipeline.conversation_filters`): `--languages en,zh` drops a
   conversation whose dominant language is not listed (`language:<code>`; the report
   counts every language seen); `--near_dup_threshold 0.8` drops one whose MinHash
   Jaccard similarity to an earlier kept one reaches the threshold (`near_duplicate`,
   with `near_duplicate_of`: the kept id).

A dump's records are accounted like pages, as `FILE#INDEX` (e.g. `dump.json#17`).

Every page runs in a worker process under a deadline (`--page_timeout`): a
page that takes longer is dropped as `timeout` and its worker replaced; a
failure no rule foresaw drops the page as `error:<ExceptionType>`. Nothing a
page holds ends the run. Every pattern runs in linear time.

Output (`--out_file`), a JSON list in sorted file order:

    [{"id": "Ab3xY9z", "model": "Model: GPT-4", "views": 42,
      "items": [{"from": "human", "value": "How do I reverse a list?"},
                {"from": "gpt", "value": "Use slicing:\\n\\n```python\\nitems[::-1]\\n```"}],
      "hash": "3f1c...e9"}]

`model` is null for pages that do not name one. A report is written next to
the output (`NAME.report.json` for `NAME.json`) so that nothing is lost silently;
it lists every entry of the folder, entries that are not `*.html` as skipped:

    {"in_dir": "...", "blocked_words": ["openai"], "page_timeout": 60.0, "max_page_bytes": 33554432,
     "entries": 324, "total_files": 320, "kept": 280, "duplicates": 11, "skipped": 4,
     "dropped": {"blocked_word": 10, "invalid_json": 3, "unreadable_file": 1, ...},
     "files": [{"file": "PAGE.HTML", "status": "skipped", "reason": "not_html"},
               {"file": "x0.html", "status": "kept", "id": "x0"},
               {"file": "x1.html", "status": "dropped", "reason": "invalid_json", "detail": "Expecting value: ..."},
               {"file": "x2.html", "status": "duplicate", "reason": "duplicate", "duplicate_of": "a9.html"},
               {"file": "x3.html", "status": "dropped", "reason": "unreadable_file", "detail": "Is a directory"}]}

entries = kept + duplicates + sum(dropped) + skipped; total_files counts the
`*.html` pages and dump records. Pages are cleaned in worker processes (or as Ray
tasks, `--ray_address`) and gathered in file order, so the output is byte-identical
for any `--num_workers` and either backend. Dumps are read and cleaned in batches
and the output written as it grows, so neither a dump nor the kept conversations are
held whole. Outputs are written atomically, and the previous run's are removed first.

From Python: `clean_page(path_or_bytes) -> (conversation | None, reason)`,
`inspect_page(...)` (the same plus the reason's detail), `html_to_markdown(html)`,
and `clean_pages(paths, blocked_words, num_workers) -> (conversations, report)`.

    python -m data_pipeline.clean_sharegpt --in_dir INPUT/ShareGPT --out_file OUT/sharegpt_clean.json
"""

import collections
import errno
import functools
import hashlib
import json
import math
import os
import re
import reprlib
import stat
import sys
import unicodedata
from pathlib import Path

from bs4 import Tag
from markdownify import MarkdownConverter
from tqdm import tqdm

from data_pipeline.conversation_filters import ConversationFilters, annotate
from data_pipeline.deadline_pool import map_with_deadline
from data_pipeline.sharegpt_dump import (
    BAD_JSON,  # a dump record that cannot be read, or where a dump breaks off
    DUMP_SUFFIX,
    BrokenRecord,
    DumpRecord,
    inspect_record,
    iter_dump,
)
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import JsonListWriter, exit_on_termination_signals, write_json_atomic

DEFAULT_BLOCKED_WORDS = ("openai",)
DEFAULT_PAGE_TIMEOUT = 60.0
DEFAULT_MAX_PAGE_BYTES = 32 * 1024 * 1024
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
NOT_HTML = "not_html"  # status "skipped": a folder entry that is neither a *.html page nor a *.json dump
DUMP_BATCH = 1024  # dump records cleaned (and held) at a time
MARKDOWN_CACHE_SIZE = 2048  # answers remembered per worker (a few MiB)
DUPLICATE = "duplicate"

# Every pattern runs in time linear in the text, whatever the text: no `.*?` that can rescan the
# rest of the text from many start points (closing tags are looked for once, see `tag_blocks`),
# tag attributes are `[^<>]*` (a scan ends at the next tag), and no pattern starts with a
# repeat such as `\n*` (see `remove_empty_code_blocks`). tests/test_hostile_pipeline.py times
# each on adversarial text.
UNCLOSED_TAIL_WORK = 2_000_000  # html.parser's rescanning, in characters, above which `escape_unclosed_tail` acts
COMMENT_OR_SCRIPT = re.compile(r"<!--|<script\b", re.I)
START_TAG_REST = re.compile(r"[^<>]*>")
NEXT_DATA_ID = re.compile(r"""\bid\s*=\s*["']?__NEXT_DATA__""", re.I)
SCRIPT_END = re.compile(r"</script\s*>", re.I)
# ShareGPT's regeneration counter, glued to the turn it numbers ("2 / 2Can you...", stacked: "1 / 12 / 3Can");
# "10 / 2 = ?" is no counter. Bounded repeats keep the backtracking over digit runs constant.
REGENERATION_COUNTER = re.compile(r"\s*(?:\d{1,3} / \d{1,3}){1,4}(?=[^\s\d/])")
# Characters that print as nothing (zero-width spaces and joiners, soft hyphen, BOM, bidi and tag
# controls): looked past, after NFKC, by the empty-turn and blocked-word checks.
INVISIBLE_CHARACTERS = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000e0000-\U000e0fff]"
)
COPY_CHARS_NOISE = re.compile(r"Copy\d+ chars / \d+ words")
EMPTY_CODE_BLOCK = re.compile(r"```\n[^\n`]*Copy code\s*```\n*")  # and the newlines before it, see below
CODE_BLOCK_HEADER = re.compile(r"```\n([^\n`]*?)Copy code")
FENCED_CODE = re.compile(r"(```.*?```)", re.S)
BLANK_LINE_RUN = re.compile(r"\n(?:[ \t]*\n){2,}")
PRE_OPEN = re.compile(r"<pre\b", re.I)
PRE_CLOSE = re.compile(r"</pre\s*>", re.I)
CODE_OPEN = re.compile(r"<code\b[^<>]*>", re.I)
CODE_CLOSE = re.compile(r"</code\s*>", re.I)
SPAN_TAG = re.compile(r"</?span\b[^<>]*>", re.I)
# A text-less icon, written without whitespace (whitespace there would be text inside <pre>).
SVG_ICON = (
    r"<svg\b[^<>]*>(?:<(?:path|rect|line|polyline|polygon|circle)\b[^<>]*>"
    r"(?:</(?:path|rect|line|polyline|polygon|circle)>)?)*</svg>"
)
COPY_BUTTON_ICON = re.compile(r"(<button\b[^<>]*>)" + SVG_ICON, re.I)
# ChatGPT's code block, exactly as the site writes it (no whitespace between tags):
# <pre><div><div><span>LANG</span><button><svg/>Copy code</button></div><div><code>CODE</code></div></div></pre>
CHATGPT_CODE_BLOCK = re.compile(
    r"(?P<pre><pre\b[^<>]*>)<div\b[^<>]*><div\b[^<>]*>(?:<span\b[^<>]*>)?(?P<language>[^<\s][^<]*)?(?:</span>)?"
    r"<button\b[^<>]*>(?:" + SVG_ICON + r")?Copy code</button></div>"
    r"<div\b[^<>]*>(?P<code_open><code\b[^<>]*>)(?P<code>(?:(?!</?code\b|</?pre\b).)*)</code></div></div></pre>",
    re.S | re.I,
)


class ParentLookupTag(Tag):
    """A bs4 Tag whose `find_parent("name")` walks the parent chain directly.

    markdownify asks every element `find_parent("pre")`; bs4's general
    matcher makes that about half of the conversion time. Lookups with
    anything beyond a plain tag name still go through bs4.
    """

    def find_parent(self, name=None, attrs=None, **kwargs):
        if not isinstance(name, str) or attrs or kwargs:
            return super().find_parent(name, attrs, **kwargs)
        parent = self.parent
        while parent is not None and parent.name != name:
            parent = parent.parent
        return parent


MARKDOWN_CONVERTER = MarkdownConverter(
    bs4_options={"features": "html.parser", "element_classes": {Tag: ParentLookupTag}},
    strip=["div", "span"],
    heading_style="ATX",
    bullets="-",
    escape_underscores=False,
    escape_asterisks=False,
)


class PageError(Exception):
    """A page that cannot yield a conversation; `reason` names why, `detail` says more, both for the report."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def main():
    exit_on_termination_signals()  # a kill mid-run removes the partly written output, like any failure
    args = parse_args()
    blocked_words = load_blocked_words(args.blocked_words)
    if args.in_file is not None:
        page_paths, skipped_names = [args.in_file], []
    else:
        page_paths, skipped_names = list_folder(args.in_dir)
    filters = ConversationFilters(args.languages, args.near_dup_threshold, args.near_dup_seed)
    report_path = report_path_for(args.out_file)
    remove_outputs(args.out_file, report_path)  # a run that fails must not leave the last run's output behind
    if args.ray_address:
        from data_pipeline.ray_backend import connect

        connect(args.ray_address)
    try:
        with JsonListWriter(args.out_file) as conversations:
            _, report = clean_pages(
                page_paths,
                blocked_words,
                args.num_workers,
                show_progress=True,
                page_timeout=args.page_timeout,
                max_page_bytes=args.max_page_bytes,
                skipped_names=skipped_names,
                filters=filters,
                ray=bool(args.ray_address),
                sink=conversations,
            )
    except OSError as error:
        sys.exit(f"error: cannot write {args.out_file}: {error.strerror or error}")
    source = (
        {"in_file": display_name(str(args.in_file))}
        if args.in_file is not None
        else {"in_dir": display_name(str(args.in_dir))}
    )
    report = {**source, "blocked_words": list(blocked_words), **report}
    write_outputs([(report_path, report)], written=[args.out_file])
    print(format_summary(report, args.out_file, report_path))


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="python -m data_pipeline.clean_sharegpt",
        description="Clean saved ShareGPT HTML pages into a JSON list of Markdown conversations, "
        "dropping malformed, badly shaped, blocked and duplicate ones; writes a report next to the output.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--in_dir", type=Path, help="folder of ShareGPT *.html pages and/or *.json dumps")
    source.add_argument("--in_file", type=Path, help="one ShareGPT JSON dump (or one page) instead of a folder")
    parser.add_argument("--out_file", type=Path, required=True, help="output JSON, e.g. sharegpt_clean.json")
    parser.add_argument(
        "--blocked_words",
        type=Path,
        default=None,
        help="file with one blocked word per line (# comments allowed); default: openai",
    )
    parser.add_argument(
        "--num_workers",
        type=int,
        default=available_cores(),
        help="worker processes (default: all cores); the output is identical for any count",
    )
    parser.add_argument(
        "--page_timeout",
        type=float,
        default=DEFAULT_PAGE_TIMEOUT,
        help=f"seconds one page may take before its worker is replaced and the page dropped as `timeout` "
        f"(default: {DEFAULT_PAGE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max_page_bytes",
        type=int,
        default=DEFAULT_MAX_PAGE_BYTES,
        help=f"larger page files are dropped as `page_too_large` unread (default: {DEFAULT_MAX_PAGE_BYTES})",
    )
    parser.add_argument(
        "--languages",
        default=None,
        help="keep only conversations whose dominant language is listed, e.g. en,zh (ISO 639-1; default: all)",
    )
    parser.add_argument(
        "--near_dup_threshold",
        type=float,
        default=None,
        help="drop a conversation whose MinHash Jaccard similarity (word 5-grams) to an earlier kept one "
        "reaches this, e.g. 0.8 (default: off)",
    )
    parser.add_argument("--near_dup_seed", type=int, default=1, help="MinHash seed (default: 1)")
    parser.add_argument(
        "--ray_address",
        default=None,
        help="run the per-page work as Ray tasks: auto, HOST:PORT, or local (a private local cluster); "
        "default: a local process pool",
    )
    args = parser.parse_args(argv)
    if args.num_workers < 1:
        parser.error("--num_workers must be at least 1")
    if args.in_file is not None and not args.in_file.is_file():
        parser.error(f"--in_file {args.in_file} is not a file")
    if args.near_dup_threshold is not None and not 0 < args.near_dup_threshold <= 1:
        parser.error("--near_dup_threshold must be in (0, 1]")
    if args.languages is not None:
        from data_pipeline.language import parse_languages

        try:
            args.languages = parse_languages(args.languages)
        except ValueError as error:
            parser.error(str(error))
    else:
        args.languages = ()
    if not args.page_timeout > 0:
        parser.error("--page_timeout must be a positive number of seconds")
    if args.max_page_bytes < 1:
        parser.error("--max_page_bytes must be at least 1")
    for output in (args.out_file, report_path_for(args.out_file)):
        clash = output_clash(output, args.in_file, args.in_dir)
        if clash:
            parser.error(clash)
    return args


def output_clash(output, in_file, in_dir):
    """Why writing `output` would destroy or feed the input (the input itself, or a page or dump in its
    folder, read on the next run), or None."""
    output = Path(output)
    if in_file is not None:
        if output.resolve() == Path(in_file).resolve() or _same_file(output, in_file):
            return f"the output {output} is the input file; choose another --out_file"
        return None
    if output.name.endswith((".html", DUMP_SUFFIX)) and output.resolve().parent == Path(in_dir).resolve():
        return (
            f"the output {output} is inside the input folder {in_dir}, where it would be read as input; "
            "choose an --out_file outside it"
        )
    return None


def _same_file(first, second):
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


# ----------------------------------------------------------------------------- one page


def clean_page(source, blocked_words=DEFAULT_BLOCKED_WORDS, max_page_bytes=DEFAULT_MAX_PAGE_BYTES):
    """Clean one page (a path or the page's bytes).

    Returns `(conversation, None)` for a kept page or `(None, reason)` for a
    dropped one; never raises for bad page content.
    """
    conversation, reason, _ = inspect_page(source, blocked_words, max_page_bytes)
    return conversation, reason


def inspect_page(source, blocked_words=DEFAULT_BLOCKED_WORDS, max_page_bytes=DEFAULT_MAX_PAGE_BYTES):
    """`(conversation, None, "")` or `(None, reason, detail)`: the page boundary, where no exception passes."""
    try:
        return build_conversation(source, blocked_words, max_page_bytes), None, ""
    except PageError as error:
        return None, error.reason, printable(error.detail)
    except Exception as error:  # a failure no rule foresaw still drops only this page
        return None, UNFORESEEN_ERROR + type(error).__name__, printable(str(error))


def build_conversation(source, blocked_words, max_page_bytes):
    page_bytes = read_page_bytes(source, max_page_bytes)
    page_id, model, views, items = read_conversation(page_bytes)
    page_id = normalise_page_id(page_id, source)
    views = normalise_views(views)
    if model is not None:
        require_encodable(model, "the model label")
    items = clean_items(items, compile_blocked_words(blocked_words))
    try:
        digest = conversation_hash(items)
    except UnicodeEncodeError:
        raise PageError(INVALID_UNICODE, "a lone surrogate in a turn") from None
    return {"id": page_id, "model": model, "views": views, "items": items, "hash": digest}


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


def strip_regeneration_counter(text):
    """The text without ShareGPT's leading `N / M` regeneration counter (glued to what follows it)."""
    counter = REGENERATION_COUNTER.match(text)
    return text[counter.end() :] if counter is not None else text


def text_for_checks(text):
    """The text as the empty-turn and blocked-word rules see it: NFKC (fullwidth `ｏｐｅｎａｉ` is `openai`)
    and without characters that print as nothing (`open\u200bai`, a turn of `\u200b` alone)."""
    return INVISIBLE_CHARACTERS.sub("", unicodedata.normalize("NFKC", text))


def html_to_markdown(html):
    """Convert ChatGPT answer HTML to Markdown, keeping code verbatim.

    div/span wrappers (and the highlighter's spans inside code) are stripped so
    code keeps its indentation and identifiers keep their underscores.
    """
    return convert_markup(drop_inert_markup(html))


@functools.lru_cache(maxsize=MARKDOWN_CACHE_SIZE)
def convert_markup(html):
    """markdownify, remembered per worker: scraped data repeats answers (duplicate pages, shared
    conversations re-posted), and the conversion is nearly all of a page's cost."""
    return MARKDOWN_CONVERTER.convert(html)


def drop_inert_markup(html):
    """Remove markup that cannot change the Markdown, before the (slow) parse.

    Inside `<pre>` text is kept verbatim, so ChatGPT's code block (wrapper
    divs, language label, Copy-code button with its icon, highlighter spans)
    can be flattened to `<pre><code>LANGCopy codeCODE</code></pre>`, which
    markdownify turns into the very same text; elsewhere only the button's
    text-less icon goes. These tags are most of an answer's markup, so the
    parse and conversion get much cheaper; tests compare against plain
    markdownify.
    """
    html = CHATGPT_CODE_BLOCK.sub(
        lambda block: (
            block["pre"]
            + block["code_open"]
            + (block["language"] or "")
            + "Copy code"
            + SPAN_TAG.sub("", block["code"])
            + "</code></pre>"
        ),
        html,
    )
    html = COPY_BUTTON_ICON.sub(r"\1", html)
    return escape_unclosed_tail(strip_spans_in_code(html))


def escape_unclosed_tail(html):
    """Write each `<` after the last `>` as `&lt;` when there are enough of them to cost time.

    No tag can end there, so Python's html.parser takes such a `<` as text,
    but only after rescanning the rest of the input from each one: time grows
    with their count times the tail's length (`<span` x 32,000 took 10 s).
    Escaped, the tail is read in one pass; its text can differ from the
    parser's own reading only in how entities there are decoded, so small
    tails (below `UNCLOSED_TAIL_WORK`) are left exactly as they are.
    """
    tail_start = html.find("<", html.rfind(">") + 1)
    if tail_start < 0:
        return html
    tail = html[tail_start:]
    if tail.count("<") * len(tail) < UNCLOSED_TAIL_WORK:
        return html
    return html[:tail_start] + tail.replace("<", "&lt;")


def strip_spans_in_code(html):
    """Drop highlighter spans inside each `<pre>`'s `<code>` elements (markdownify drops them too, slower)."""
    pieces, position = [], 0
    for pre_open, pre_close in tag_blocks(html, PRE_OPEN, PRE_CLOSE, 0, len(html)):
        for code_open, code_close in tag_blocks(html, CODE_OPEN, CODE_CLOSE, pre_open.start(), pre_close.end()):
            pieces.append(html[position : code_open.end()])
            pieces.append(SPAN_TAG.sub("", html[code_open.end() : code_close.start()]))
            position = code_close.start()
    pieces.append(html[position:])
    return "".join(pieces)


def tag_blocks(text, open_pattern, close_pattern, start, end):
    """(opening, closing) matches of each `open.*?close` in text[start:end], left to right, in linear time.

    The regex `open.*?close` retries the rest of the text from every opening
    when a closing tag is missing (quadratic on `<pre><pre><pre>...`); here a
    missing closing tag ends the search, since none can follow a later opening either.
    """
    position = start
    while True:
        opening = open_pattern.search(text, position, end)
        if opening is None:
            return
        closing = close_pattern.search(text, opening.end(), end)
        if closing is None:
            return
        yield opening, closing
        position = closing.end()


def clean_markdown(text):
    """Remove ShareGPT page noise from a turn's Markdown and normalise code fences."""
    text = COPY_CHARS_NOISE.sub("", text)
    text = remove_empty_code_blocks(text)
    text = CODE_BLOCK_HEADER.sub(lambda match: "```" + match.group(1).strip() + "\n", text)
    parts = FENCED_CODE.split(text)
    parts[::2] = [BLANK_LINE_RUN.sub("\n\n", part) for part in parts[::2]]
    return "".join(parts).strip()


def remove_empty_code_blocks(text):
    """Replace each empty code block, with the newlines around it, by one blank line.

    The same as `re.sub(r"\\n*```\\n[^\\n`]*Copy code\\s*```\\n*", "\\n\\n", text)`, whose
    leading `\\n*` rescans a run of newlines from each of them (quadratic);
    here the newlines before a block are taken off the text before it.
    """
    pieces, position = [], 0
    for block in EMPTY_CODE_BLOCK.finditer(text):
        pieces += [text[position : block.start()].rstrip("\n"), "\n\n"]
        position = block.end()
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


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


# ----------------------------------------------------------------------------- many pages


def clean_pages(
    page_paths,
    blocked_words=DEFAULT_BLOCKED_WORDS,
    num_workers=1,
    show_progress=False,
    page_timeout=DEFAULT_PAGE_TIMEOUT,
    max_page_bytes=DEFAULT_MAX_PAGE_BYTES,
    skipped_names=(),
    filters=None,
    ray=False,
    sink=None,
):
    """Clean pages and dumps in worker processes (or Ray tasks) and deduplicate in the given order.

    Returns (conversations, report). Results are gathered in input order, so
    the output does not depend on `num_workers` or the backend. `skipped_names`
    are the other entries of the folder, listed in the report as skipped.
    `filters` (ConversationFilters) adds the language and near-duplicate rules;
    `sink` (e.g. a JsonListWriter) receives kept conversations instead of a list.
    """
    page_paths = [Path(path) for path in page_paths]
    filters = filters or ConversationFilters()
    options = (tuple(blocked_words), max_page_bytes, filters.worker_options())
    results = map_sources(page_paths, options, num_workers, page_timeout, show_progress, ray)
    report = account(results, skipped_names, filters, sink)
    conversations = report.pop("conversations")
    return conversations, {"page_timeout": page_timeout, "max_page_bytes": max_page_bytes, **report}


# Pages per worker below which starting processes costs more than it saves.
PAGES_PER_WORKER_MIN = 32
WORKER_OPTIONS = (DEFAULT_BLOCKED_WORDS, DEFAULT_MAX_PAGE_BYTES, (False, False, 1))


def map_sources(paths, options, num_workers, page_timeout, show_progress, ray=False):
    """Yield `(label, inspect result)` for every page and dump record, in order, a batch at a time."""
    has_dumps = any(path.suffix == DUMP_SUFFIX for path in paths)
    with progress_bar(None if has_dumps else len(paths), show_progress) as progress:
        for batch in source_batches(paths):
            work = [item for _, item in batch if isinstance(item, (Path, DumpRecord))]
            results = iter(map_pages(work, options, num_workers, page_timeout, ray))
            for label, item in batch:
                yield label, next(results) if isinstance(item, (Path, DumpRecord)) else item
                progress.update()


def source_batches(paths):
    """Lists of `(label, item)`: a page path, a DumpRecord, or an answer already known (a broken dump).

    A dump's records are cut into batches of DUMP_BATCH items, so a dump of any size is held a
    batch at a time; pages (paths, small) stay in one batch, so the same workers, and what they
    remember, serve all of them.
    """
    batch = []
    for path in paths:
        if path.suffix != DUMP_SUFFIX:
            batch.append((path, path))
            continue
        for label, item in dump_items(path):
            batch.append((label, item))
            if len(batch) >= DUMP_BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def dump_items(path):
    """A dump's records as `(FILE#INDEX, DumpRecord)`; where it breaks, or a file that is no dump, an answer."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        yield path.name, (None, UNREADABLE_FILE, error.strerror or str(error))
        return
    if not stat.S_ISREG(mode):  # a FIFO named x.json would block the open
        yield (
            path.name,
            (
                None,
                UNREADABLE_FILE if stat.S_ISDIR(mode) else NOT_REGULAR_FILE,
                os.strerror(errno.EISDIR) if stat.S_ISDIR(mode) else file_kind(mode),
            ),
        )
        return
    try:
        for entry in iter_dump(path, parse=False):  # parsed by the workers
            if isinstance(entry, BrokenRecord):
                yield entry.label, (None, BAD_JSON, printable(entry.detail))
            else:
                yield entry.label, entry
    except OSError as error:
        yield path.name, (None, UNREADABLE_FILE, error.strerror or str(error))


def map_pages(items, options, num_workers, page_timeout, ray=False):
    """Yield inspect results for pages and dump records in input order, each under a deadline.

    Items always run in workers, even with one: an item that hangs costs its
    worker (killed and replaced), never the run.
    """
    num_workers = max(1, min(num_workers, -(-len(items) // PAGES_PER_WORKER_MIN)))
    failures = dict(timed_out=(None, TIMEOUT, f"over {page_timeout:g} s"), crashed=(None, WORKER_CRASHED, ""))
    if ray:
        # By the module's importable name, also when this file runs as __main__: Ray's workers
        # import functions by reference, and cannot import them from the driver's __main__.
        from data_pipeline import clean_sharegpt
        from data_pipeline.ray_backend import map_with_ray

        return map_with_ray(
            clean_sharegpt.inspect_page_in_worker,
            items,
            page_timeout,
            **failures,
            initializer=clean_sharegpt.set_worker_options,
            initargs=(options,),
        )
    return map_with_deadline(
        inspect_page_in_worker,
        items,
        num_workers,
        page_timeout,
        **failures,
        initializer=set_worker_options,
        initargs=(options,),
    )


class PageProgress(tqdm):
    monitor_interval = 0  # no monitor thread: replacement workers are forked while the bar runs


def progress_bar(total, show_progress):
    return PageProgress(total=total, desc="cleaning pages", unit="page", disable=not show_progress, file=sys.stderr)


def set_worker_options(options):
    global WORKER_OPTIONS
    WORKER_OPTIONS = options


def inspect_page_in_worker(item):
    blocked_words, max_page_bytes, filter_options = WORKER_OPTIONS
    if isinstance(item, DumpRecord):
        conversation, reason, detail = inspect_record(item, blocked_words, max_page_bytes)
    else:
        conversation, reason, detail = inspect_page(item, blocked_words, max_page_bytes)
    try:
        return annotate(conversation, filter_options), reason, detail
    except Exception as error:  # the filters' libraries on text no rule foresaw: drop this page only
        return None, f"error:{type(error).__name__}", printable(str(error))


def account(labelled_results, skipped_names=(), filters=None, sink=None):
    """Exact duplicates, then the optional filters, over `(label, result)` in order; every entry reported."""
    conversations = [] if sink is None else sink
    files = []
    dropped = collections.Counter()
    first_file_by_hash = {}
    file_by_kept_id = {}
    total = kept = 0
    for label, (conversation, reason, detail) in labelled_results:
        total += 1
        name = display_name(label.name if isinstance(label, Path) else label)
        if conversation is None:
            dropped[reason] += 1
            files.append(
                {"file": name, "status": "dropped", "reason": reason, **({"detail": detail} if detail else {})}
            )
        elif (digest := bytes.fromhex(conversation["hash"])) in first_file_by_hash:  # bytes: half a hex str's size
            files.append(
                {"file": name, "status": "duplicate", "reason": DUPLICATE, "duplicate_of": first_file_by_hash[digest]}
            )
        else:
            first_file_by_hash[digest] = name
            if conversation["id"] in file_by_kept_id:  # another conversation under the same id (e.g. 0 and "0")
                dropped[DUPLICATE_ID] += 1
                detail = f"id {conversation['id']!r} is taken by {file_by_kept_id[conversation['id']]}"
                files.append({"file": name, "status": "dropped", "reason": DUPLICATE_ID, "detail": printable(detail)})
                continue
            verdict = filters.check(conversation, name) if filters is not None and filters.active else None
            if verdict is not None:
                dropped[verdict["reason"]] += 1
                files.append({"file": name, "status": "dropped", **verdict})
                continue
            file_by_kept_id[conversation["id"]] = name
            conversations.append(conversation)
            kept += 1
            files.append({"file": name, "status": "kept", "id": conversation["id"]})
    files += [{"file": display_name(name), "status": "skipped", "reason": NOT_HTML} for name in skipped_names]
    files.sort(key=lambda entry: entry_order(entry["file"]))
    return {
        "conversations": conversations,
        "entries": total + len(skipped_names),
        "total_files": total,
        "kept": kept,
        "duplicates": sum(1 for entry in files if entry["status"] == "duplicate"),
        "dropped": dict(sorted(dropped.items())),
        "skipped": len(skipped_names),
        **(filters.report_fields() if filters is not None else {}),
        "files": files,
    }


def entry_order(name):
    """Report order: by file name, a dump's records by their index (`d.json#2` before `d.json#10`)."""
    file_name, _, index = name.rpartition("#")
    if file_name.endswith(DUMP_SUFFIX) and index.isdigit():
        return file_name, int(index)
    return name, -1


# ----------------------------------------------------------------------------- input and output


def list_folder(in_dir):
    """The `*.html` pages and `*.json` dumps of a folder (sorted by name) and the names of its other entries."""
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        sys.exit(f"error: input folder {in_dir} does not exist or is not a folder")
    try:
        names = sorted(entry.name for entry in os.scandir(in_dir))
    except OSError as error:
        sys.exit(f"error: cannot list input folder {in_dir}: {error.strerror}")
    page_paths = [in_dir / name for name in names if name.endswith((".html", DUMP_SUFFIX))]
    skipped_names = [name for name in names if not name.endswith((".html", DUMP_SUFFIX))]
    if not page_paths:
        others = (
            f" ({len(skipped_names)} other entries, e.g. {display_name(skipped_names[0])})" if skipped_names else ""
        )
        sys.exit(f"error: no *.html pages or *.json dumps in {in_dir}{others}")
    return page_paths, skipped_names


def load_blocked_words(path):
    """Blocked words from a file (one per line, `#` comments), or the default list."""
    if path is None:
        return DEFAULT_BLOCKED_WORDS
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        sys.exit(f"error: cannot read blocked words file {path}: {getattr(error, 'strerror', None) or error}")
    return tuple(line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip())


def report_path_for(out_file):
    out_file = Path(out_file)
    return out_file.with_name(out_file.stem + ".report.json")


def remove_outputs(*paths):
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)
        except IsADirectoryError:
            sys.exit(f"error: output {path} is a folder")
        except OSError as error:
            sys.exit(f"error: cannot replace output {path}: {error.strerror}")


def write_outputs(outputs, written=()):
    """Write each (path, data) atomically; on a failure remove what was written (and `written`) and exit."""
    written = list(written)
    for path, data in outputs:
        try:
            write_json_atomic(path, data)
        except OSError as error:
            for done in written:
                Path(done).unlink(missing_ok=True)
            sys.exit(f"error: cannot write {path}: {error.strerror or error}")
        written.append(path)


def format_summary(report, out_file, report_path):
    lines = [
        f"entries     {report['entries']:>8}",
        f"kept        {report['kept']:>8}   -> {out_file}",
        f"duplicates  {report['duplicates']:>8}",
        f"dropped     {sum(report['dropped'].values()):>8}",
    ]
    lines += [f"  {reason:<22}{count:>6}" for reason, count in report["dropped"].items()]
    lines.append(f"skipped     {report['skipped']:>8}   (not *.html or *.json)")
    if "languages" in report:
        lines.append("languages   " + ", ".join(f"{code} {count}" for code, count in report["languages"].items()))
    lines.append(f"report: {report_path}")
    return "\n".join(lines)


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


if __name__ == "__main__":
    main()
