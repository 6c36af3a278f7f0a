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

The stage in parts: `sharegpt_page` reads a page, `sharegpt_dump` a dump's records, both into
the record of `sharegpt_conversation` (its rules, with `sharegpt_markdown` for the HTML);
`clean_workers` runs them over the pool, `clean_dedup` keeps or drops each result and
`clean_report` writes the report. From Python: `sharegpt_page.clean_page(path_or_bytes) ->
(conversation | None, reason)`, `sharegpt_page.inspect_page(...)` (the same plus the reason's
detail), `sharegpt_markdown.html_to_markdown(html)`, and here
`clean_pages(paths, blocked_words, num_workers) -> (conversations, report)`.

    python -m data_pipeline.clean_sharegpt --in_dir INPUT/ShareGPT --out_file OUT/sharegpt_clean.json
"""

import os
import sys
from pathlib import Path

from data_pipeline.clean_dedup import account
from data_pipeline.clean_report import format_summary, remove_outputs, report_path_for, write_outputs
from data_pipeline.clean_workers import map_sources
from data_pipeline.conversation_filters import ConversationFilters
from data_pipeline.sharegpt_conversation import DEFAULT_BLOCKED_WORDS, display_name
from data_pipeline.sharegpt_dump import DUMP_SUFFIX
from data_pipeline.sharegpt_page import DEFAULT_MAX_PAGE_BYTES
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import JsonListWriter, exit_on_termination_signals

DEFAULT_PAGE_TIMEOUT = 60.0


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


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


if __name__ == "__main__":
    main()
