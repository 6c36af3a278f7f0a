"""Peak memory of `clean_sharegpt` on a large generated ShareGPT JSON dump.

The dump is written record by record (never held whole) from the bundled pages' conversations,
each copy made unique (its human turns numbered) so that nothing collapses as a duplicate:
`--kind html` keeps the answers' HTML, as old dumps have them; `--kind markdown` writes the
cleaned Markdown, as cleaned dumps have them. Then `python -m data_pipeline.clean_sharegpt
--in_file DUMP` runs as a child process while the summed resident memory of it and its
workers is sampled every 50 ms; its own peak (`ru_maxrss`) is read at exit. The dump and
the output are deleted afterwards unless `--keep`.

    python benchmarks/dump_memory.py --size_mb 1024 --kind markdown
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from data_pipeline.clean_sharegpt import clean_pages
from data_pipeline.sharegpt_page import record_from_page
from ochat.utils.cli import ArgumentParser

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_PAGES = REPO_ROOT / "data_pipeline" / "examples" / "ShareGPT"


def main():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size_mb", type=int, default=1024, help="dump size to generate, in MiB")
    parser.add_argument("--kind", choices=("html", "markdown"), default="markdown")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work_dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--keep", action="store_true", help="keep the generated dump and output")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dump_memory_", dir=args.work_dir))
    try:
        dump = work / "dump.json"
        started = time.perf_counter()
        records = write_dump(dump, args.size_mb * 2**20, args.kind)
        print(
            f"generated {dump.stat().st_size / 2**20:,.0f} MiB, {records:,} records ({args.kind}) "
            f"in {time.perf_counter() - started:.0f} s"
        )
        out = work / "clean.json"
        command = [
            sys.executable,
            "-m",
            "data_pipeline.clean_sharegpt",
            "--in_file",
            str(dump),
            "--out_file",
            str(out),
            "--num_workers",
            str(args.workers),
        ]
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tree_peak = sample_tree_peak(process)
        returncode = process.wait()
        wall = time.perf_counter() - started
        own_peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if returncode != 0:
            sys.exit(f"clean_sharegpt failed ({returncode})")
        report = json.loads(out.with_name("clean.report.json").read_text())
        print(
            f"{'dump MiB':>9}{'records':>10}{'kept':>10}{'wall s':>9}{'records/s':>11}"
            f"{'peak RSS, largest process MiB':>31}{'peak RSS, all processes MiB':>29}{'output MiB':>12}"
        )
        print(
            f"{dump.stat().st_size / 2**20:>9,.0f}{records:>10,}{report['kept']:>10,}{wall:>9.1f}"
            f"{records / wall:>11,.0f}{own_peak_mib:>31,.0f}{tree_peak / 2**20:>29,.0f}"
            f"{out.stat().st_size / 2**20:>12,.0f}"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def base_records(kind):
    pages = sorted(BUNDLED_PAGES.glob("*.html"))
    records = [record for record in (record_from_page(page.read_bytes()) for page in pages) if record]
    if kind == "markdown":
        conversations, _ = clean_pages(pages, num_workers=2)
        records = [
            {"id": c["id"], "model": c["model"], "views": c["views"], "conversations": c["items"]}
            for c in conversations
        ]
    return records


def write_dump(path, size_bytes, kind):
    """Write copies of the base records until the file reaches `size_bytes`; returns the record count."""
    records = base_records(kind)
    written = count = 0
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("[")
        while written < size_bytes:
            base = records[count % len(records)]
            turns = [
                {**turn, "value": f"{turn['value']} (copy {count})"} if turn["from"] == "human" else turn
                for turn in base["conversations"]
            ]
            text = ("," if count else "") + json.dumps(
                {**base, "id": f"r{count}", "conversations": turns}, ensure_ascii=False
            )
            handle.write(text)
            written += len(text.encode("utf-8"))
            count += 1
        handle.write("]")
    return count


def sample_tree_peak(process, interval=0.05):
    """Largest sum of RSS over the process and its children seen while it runs."""
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set() and process.poll() is None:
            try:
                members = [root, *root.children(recursive=True)]
                peak = max(peak, sum(member.memory_info().rss for member in members if member.is_running()))
            except psutil.Error:
                pass
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    process.wait()
    done.set()
    thread.join()
    return peak


if __name__ == "__main__":
    main()
