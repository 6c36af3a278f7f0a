"""The clean stage's per-item work, pages and dump records, in worker processes or Ray tasks, in input order.

Every item runs in a worker under a deadline: one that hangs costs its worker (killed and
replaced) and is dropped as `timeout`, never the run. Results come back in input order, so the
output does not depend on the number of workers or the backend. Dumps are cut into batches of
DUMP_BATCH records, so a dump of any size is held a batch at a time. Ray's workers import the
functions here by reference, which is why they live in a module that never runs as `__main__`.
"""

import errno
import os
import stat
import sys
from pathlib import Path

from tqdm import tqdm

from data_pipeline.conversation_filters import annotate
from data_pipeline.deadline_pool import map_with_deadline
from data_pipeline.sharegpt_conversation import (
    BAD_JSON,
    DEFAULT_BLOCKED_WORDS,
    NOT_REGULAR_FILE,
    TIMEOUT,
    UNREADABLE_FILE,
    WORKER_CRASHED,
    printable,
)
from data_pipeline.sharegpt_dump import DUMP_SUFFIX, BrokenRecord, DumpRecord, inspect_record, iter_dump
from data_pipeline.sharegpt_page import DEFAULT_MAX_PAGE_BYTES, file_kind, inspect_page

DUMP_BATCH = 1024  # dump records cleaned (and held) at a time
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
        from data_pipeline.ray_backend import map_with_ray

        return map_with_ray(
            inspect_page_in_worker,
            items,
            page_timeout,
            **failures,
            initializer=set_worker_options,
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
