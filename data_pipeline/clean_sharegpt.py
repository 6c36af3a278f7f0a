"""Clean saved ShareGPT pages into conversations ready for training.

Reads every `*.html` page in `--in-dir` (sorted by file name), takes the
conversation from the page's `<script id="__NEXT_DATA__">` JSON, turns the
assistant's HTML into Markdown and keeps only well-formed, non-duplicate
conversations. Human turns are plain text as typed; assistant turns are HTML.

Rules, in the order they are applied to a page:

1. the page file must be readable, decode as UTF-8, hold `__NEXT_DATA__` with valid JSON and a
   `props.pageProps.content.items` list of `{"from": str, "value": str}`;
2. a leading non-human turn and a trailing human turn are dropped; fewer than
   2 turns left, or roles not alternating human/gpt, drops the page;
3. assistant HTML -> Markdown (markdownify, div/span wrappers stripped so code
   keeps its indentation and underscores); `LANGCopy code` code-block headers
   become fenced blocks with the language; a leading `N / M` regeneration
   counter, `CopyN chars / M words` noise and empty code blocks are removed;
   runs of blank lines outside code collapse to one;
4. a turn left empty, or any turn containing a blocked word (case-insensitive,
   default `openai`), drops the page;
5. exact duplicates (same sha256 of the cleaned turns) are dropped; the first
   page in sorted file order wins.

Output (`--out-file`), a JSON list in sorted file order:

    [{"id": "Ab3xY9z", "model": "Model: GPT-4", "views": 42,
      "items": [{"from": "human", "value": "How do I reverse a list?"},
                {"from": "gpt", "value": "Use slicing:\\n\\n```python\\nitems[::-1]\\n```"}],
      "hash": "3f1c...e9"}]

`model` is null for pages that do not name one. A report is written next to
the output (`NAME.report.json` for `NAME.json`) so that nothing is lost silently:

    {"in_dir": "...", "blocked_words": ["openai"], "total_files": 320, "kept": 280, "duplicates": 11,
     "dropped": {"blocked_word": 10, "invalid_json": 3, ...},
     "files": [{"file": "x1.html", "status": "dropped", "reason": "invalid_json"},
               {"file": "x2.html", "status": "duplicate", "reason": "duplicate", "duplicate_of": "a9.html"}]}

total_files = kept + duplicates + sum(dropped). Pages are cleaned in a process
pool over all cores and gathered in file order, so the output is byte-identical
for any `--num-workers`.

From Python: `clean_page(path_or_bytes) -> (conversation | None, reason)`,
`html_to_markdown(html)`, and `clean_pages(paths, blocked_words, num_workers)
-> (conversations, report)`.

    python -m data_pipeline.clean_sharegpt --in-dir INPUT/ShareGPT --out-file OUT/sharegpt_clean.json
"""

import collections
import hashlib
import json
import multiprocessing
import os
import re
import sys
from pathlib import Path

from bs4 import Tag
from markdownify import MarkdownConverter
from tqdm import tqdm

from ochat.utils.files import write_json_atomic
from ochat.utils.cli import ArgumentParser

DEFAULT_BLOCKED_WORDS = ("openai",)

# Reasons a page is dropped, as they appear in the report.
UNREADABLE_FILE = "unreadable_file"
UNDECODABLE_BYTES = "undecodable_bytes"
NO_NEXT_DATA = "no_next_data"
INVALID_JSON = "invalid_json"
NO_CONTENT = "no_content"
INVALID_ITEMS = "invalid_items"
UNPARSEABLE_MARKUP = "unparseable_markup"
TOO_FEW_TURNS = "too_few_turns"
ROLES_NOT_ALTERNATING = "roles_not_alternating"
EMPTY_TURN = "empty_turn"
BLOCKED_WORD = "blocked_word"
DUPLICATE = "duplicate"

NEXT_DATA_PATTERN = re.compile(
    r"""<script\b[^>]*\bid\s*=\s*["']?__NEXT_DATA__["']?[^>]*>(.*?)</script\s*>""", re.S | re.I
)
REGENERATION_COUNTER = re.compile(r"^\s*\d+ / \d+")
COPY_CHARS_NOISE = re.compile(r"Copy\d+ chars / \d+ words")
EMPTY_CODE_BLOCK = re.compile(r"\n*```\n[^\n`]*Copy code\s*```\n*")
CODE_BLOCK_HEADER = re.compile(r"```\n([^\n`]*?)Copy code")
FENCED_CODE = re.compile(r"(```.*?```)", re.S)
BLANK_LINE_RUN = re.compile(r"\n(?:[ \t]*\n){2,}")
PRE_BLOCK = re.compile(r"<pre\b.*?</pre\s*>", re.S | re.I)
CODE_IN_PRE = re.compile(r"(<code\b[^>]*>)(.*?)(</code\s*>)", re.S | re.I)
SPAN_TAG = re.compile(r"</?span\b[^>]*>", re.I)
# A text-less icon, written without whitespace (whitespace there would be text inside <pre>).
SVG_ICON = r"<svg\b[^>]*>(?:<(?:path|rect|line|polyline|polygon|circle)\b[^>]*>(?:</(?:path|rect|line|polyline|polygon|circle)>)?)*</svg>"
COPY_BUTTON_ICON = re.compile(r"(<button\b[^>]*>)" + SVG_ICON, re.I)
# ChatGPT's code block, exactly as the site writes it (no whitespace between tags):
# <pre><div><div><span>LANG</span><button><svg/>Copy code</button></div><div><code>CODE</code></div></div></pre>
CHATGPT_CODE_BLOCK = re.compile(
    r"(?P<pre><pre\b[^>]*>)<div\b[^>]*><div\b[^>]*>(?:<span\b[^>]*>)?(?P<language>[^<\s][^<]*)?(?:</span>)?"
    r"<button\b[^>]*>(?:" + SVG_ICON + r")?Copy code</button></div>"
    r"<div\b[^>]*>(?P<code_open><code\b[^>]*>)(?P<code>(?:(?!</?code\b|</?pre\b).)*)</code></div></div></pre>",
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
    """A page that cannot yield a conversation; `reason` names why, for the report."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def main():
    args = parse_args()
    blocked_words = load_blocked_words(args.blocked_words)
    page_paths = list_pages(args.in_dir)
    conversations, report = clean_pages(page_paths, blocked_words, args.num_workers, show_progress=True)
    report["in_dir"] = str(args.in_dir)
    report["blocked_words"] = list(blocked_words)
    report_path = report_path_for(args.out_file)
    write_json_atomic(args.out_file, conversations)
    write_json_atomic(report_path, report)
    print(format_summary(report, args.out_file, report_path))


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="python -m data_pipeline.clean_sharegpt",
        description="Clean saved ShareGPT HTML pages into a JSON list of Markdown conversations, "
        "dropping malformed, badly shaped, blocked and duplicate ones; writes a report next to the output.",
    )
    parser.add_argument("--in_dir", type=Path, required=True, help="folder of ShareGPT *.html pages")
    parser.add_argument("--out_file", type=Path, required=True, help="output JSON, e.g. sharegpt_clean.json")
    parser.add_argument("--blocked_words", type=Path, default=None,
        help="file with one blocked word per line (# comments allowed); default: openai",
    )
    parser.add_argument("--num_workers", type=int, default=available_cores(),
        help="worker processes (default: all cores); the output is identical for any count",
    )
    args = parser.parse_args(argv)
    if args.num_workers < 1:
        parser.error("--num-workers must be at least 1")
    return args


# ----------------------------------------------------------------------------- one page

def clean_page(source, blocked_words=DEFAULT_BLOCKED_WORDS):
    """Clean one page (a path or the page's bytes).

    Returns `(conversation, None)` for a kept page or `(None, reason)` for a
    dropped one; never raises for bad page content.
    """
    try:
        page_bytes = read_page_bytes(source)
        page_id, model, views, items = read_conversation(page_bytes)
        items = clean_items(items, compile_blocked_words(blocked_words))
    except PageError as error:
        return None, error.reason
    if page_id is None and isinstance(source, (str, os.PathLike)):
        page_id = Path(source).stem
    return {"id": page_id, "model": model, "views": views, "items": items,
            "hash": conversation_hash(items)}, None


def read_page_bytes(source):
    if not isinstance(source, (str, os.PathLike)):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as error:
        raise PageError(UNREADABLE_FILE, str(error)) from None


def read_conversation(page_bytes):
    """Pull (id, model, views, raw items) out of a page's __NEXT_DATA__ JSON."""
    try:
        page_text = page_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PageError(UNDECODABLE_BYTES, str(error)) from None
    match = NEXT_DATA_PATTERN.search(page_text)
    if match is None:
        raise PageError(NO_NEXT_DATA)
    try:
        next_data = json.loads(match.group(1))
    except json.JSONDecodeError as error:
        raise PageError(INVALID_JSON, str(error)) from None
    page_props = next_data.get("props", {}).get("pageProps") if isinstance(next_data, dict) else None
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


def clean_items(items, blocked_pattern):
    """Apply the turn-shape, Markdown and blocked-word rules; raises PageError to drop."""
    roles = [item["from"] for item in items]
    start = 1 if roles and roles[0] != "human" else 0
    end = len(roles) - 1 if len(roles) > start and roles[-1] == "human" else len(roles)
    items = items[start:end]
    if len(items) < 2:
        raise PageError(TOO_FEW_TURNS)
    if any(item["from"] != ("human" if index % 2 == 0 else "gpt") for index, item in enumerate(items)):
        raise PageError(ROLES_NOT_ALTERNATING)

    cleaned = []
    for item in items:
        value = clean_turn_value(item["from"], item["value"])
        if not value:
            raise PageError(EMPTY_TURN)
        if blocked_pattern is not None and blocked_pattern.search(value):
            raise PageError(BLOCKED_WORD)
        cleaned.append({"from": item["from"], "value": value})
    return cleaned


def clean_turn_value(role, value):
    """Markdown for one turn: assistant HTML is converted, human text kept as typed."""
    if role == "gpt":
        try:
            value = html_to_markdown(value)
        except Exception as error:  # markup the parser rejects must drop the page, not the run
            raise PageError(UNPARSEABLE_MARKUP, repr(error)) from None
    return clean_markdown(value)


def html_to_markdown(html):
    """Convert ChatGPT answer HTML to Markdown, keeping code verbatim.

    div/span wrappers (and the highlighter's spans inside code) are stripped so
    code keeps its indentation and identifiers keep their underscores.
    """
    return MARKDOWN_CONVERTER.convert(drop_inert_markup(html))


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
    html = CHATGPT_CODE_BLOCK.sub(lambda block: (
        block["pre"] + block["code_open"] + (block["language"] or "") + "Copy code"
        + SPAN_TAG.sub("", block["code"]) + "</code></pre>"), html)
    html = COPY_BUTTON_ICON.sub(r"\1", html)
    return PRE_BLOCK.sub(lambda pre: CODE_IN_PRE.sub(
        lambda code: code.group(1) + SPAN_TAG.sub("", code.group(2)) + code.group(3), pre.group(0)), html)


def clean_markdown(text):
    """Remove ShareGPT page noise from a turn's Markdown and normalise code fences."""
    text = REGENERATION_COUNTER.sub("", text, count=1)
    text = COPY_CHARS_NOISE.sub("", text)
    text = EMPTY_CODE_BLOCK.sub("\n\n", text)
    text = CODE_BLOCK_HEADER.sub(lambda match: "```" + match.group(1).strip() + "\n", text)
    parts = FENCED_CODE.split(text)
    parts[::2] = [BLANK_LINE_RUN.sub("\n\n", part) for part in parts[::2]]
    return "".join(parts).strip()


def compile_blocked_words(blocked_words):
    words = [word for word in blocked_words if word]
    if not words:
        return None
    return re.compile("|".join(re.escape(word) for word in words), re.I)


def conversation_hash(items):
    """sha256 of the cleaned turns: stable across processes and runs, unlike hash()."""
    canonical = json.dumps([[item["from"], item["value"]] for item in items], ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- many pages

def clean_pages(page_paths, blocked_words=DEFAULT_BLOCKED_WORDS, num_workers=1, show_progress=False):
    """Clean pages in parallel and deduplicate in the given order.

    Returns (conversations, report). Results are gathered in input order, so
    the output does not depend on `num_workers`.
    """
    page_paths = [Path(path) for path in page_paths]
    results = map_pages(page_paths, tuple(blocked_words), num_workers, show_progress)
    return deduplicate(page_paths, results)


# Pages per worker below which starting processes costs more than it saves.
PAGES_PER_WORKER_MIN = 32
# fork starts workers in milliseconds with everything already imported; the
# parent holds no threads when the pool starts (the progress bar comes after).
POOL_CONTEXT = "fork" if sys.platform == "linux" else "spawn"
WORKER_BLOCKED_WORDS = DEFAULT_BLOCKED_WORDS


def map_pages(page_paths, blocked_words, num_workers, show_progress):
    """Yield clean_page results in input order, from a process pool when it pays off."""
    num_workers = max(1, min(num_workers, len(page_paths) // PAGES_PER_WORKER_MIN))
    if num_workers == 1:
        with progress_bar(len(page_paths), show_progress) as progress:
            for path in page_paths:
                yield clean_page(path, blocked_words)
                progress.update()
        return
    chunk_size = max(1, min(64, len(page_paths) // (num_workers * 8)))
    context = multiprocessing.get_context(POOL_CONTEXT)
    with context.Pool(num_workers, initializer=set_worker_blocked_words, initargs=(blocked_words,)) as pool:
        with progress_bar(len(page_paths), show_progress) as progress:
            for result in pool.imap(clean_page_in_worker, page_paths, chunksize=chunk_size):
                yield result
                progress.update()


def progress_bar(total, show_progress):
    return tqdm(total=total, desc="cleaning pages", unit="page", disable=not show_progress, file=sys.stderr)


def set_worker_blocked_words(blocked_words):
    global WORKER_BLOCKED_WORDS
    WORKER_BLOCKED_WORDS = blocked_words


def clean_page_in_worker(path):
    return clean_page(path, WORKER_BLOCKED_WORDS)


def deduplicate(page_paths, results):
    """Keep the first conversation per hash; account for every page in the report."""
    conversations, files = [], []
    dropped = collections.Counter()
    first_file_by_hash = {}
    for path, (conversation, reason) in zip(page_paths, results):
        if conversation is None:
            dropped[reason] += 1
            files.append({"file": path.name, "status": "dropped", "reason": reason})
        elif conversation["hash"] in first_file_by_hash:
            files.append({"file": path.name, "status": "duplicate", "reason": DUPLICATE,
                          "duplicate_of": first_file_by_hash[conversation["hash"]]})
        else:
            first_file_by_hash[conversation["hash"]] = path.name
            conversations.append(conversation)
    report = {
        "total_files": len(page_paths),
        "kept": len(conversations),
        "duplicates": sum(1 for entry in files if entry["status"] == "duplicate"),
        "dropped": dict(sorted(dropped.items())),
        "files": files,
    }
    return conversations, report


# ----------------------------------------------------------------------------- input and output

def list_pages(in_dir):
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        sys.exit(f"error: input folder {in_dir} does not exist or is not a folder")
    page_paths = sorted(in_dir.glob("*.html"), key=lambda path: path.name)
    if not page_paths:
        sys.exit(f"error: no *.html pages in {in_dir}")
    return page_paths


def load_blocked_words(path):
    """Blocked words from a file (one per line, `#` comments), or the default list."""
    if path is None:
        return DEFAULT_BLOCKED_WORDS
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        sys.exit(f"error: cannot read blocked words file {path}: {error}")
    return tuple(line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip())


def report_path_for(out_file):
    out_file = Path(out_file)
    return out_file.with_name(out_file.stem + ".report.json")


def format_summary(report, out_file, report_path):
    lines = [
        f"pages       {report['total_files']:>8}",
        f"kept        {report['kept']:>8}   -> {out_file}",
        f"duplicates  {report['duplicates']:>8}",
        f"dropped     {sum(report['dropped'].values()):>8}",
    ]
    lines += [f"  {reason:<22}{count:>6}" for reason, count in report["dropped"].items()]
    lines.append(f"report: {report_path}")
    return "\n".join(lines)


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


if __name__ == "__main__":
    main()
