"""Wall time of the whole test suite, serial and with parallel workers, and where the time goes.

Runs `scripts/test.sh` (setup skipped: .venv/ must exist) once per worker count, with a JUnit
report, and prints wall time, CPU time of the child processes (Ray's daemons, which detach, are
not counted), test counts, and the slowest test
files. Files run whole on one worker (`--dist loadfile`), so a file's module fixtures, such as a
started server, are built once; the wall time of a parallel run is bounded below by its
slowest file.

    python benchmarks/suite_time.py --workers 0 2
"""

from __future__ import annotations

import collections
import os
import resource
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree

from ochat.utils.cli import ArgumentParser
from ochat.utils.files import SOURCE_ROOT


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_suite(workers: int, report: str, pytest_args: list[str]) -> dict:
    env = {**os.environ, "OCHAT_SETUP_DONE": "1", "OCHAT_TEST_WORKERS": str(workers)}
    command = ["bash", "scripts/test.sh", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *pytest_args]
    cpu_before, started = children_cpu_seconds(), time.monotonic()
    result = subprocess.run(command, cwd=SOURCE_ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.monotonic() - started, children_cpu_seconds() - cpu_before
    counts = collections.Counter()
    per_file = collections.Counter()
    for case in ElementTree.parse(report).iter("testcase"):
        per_file[case.get("classname")] += float(case.get("time") or 0)
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        counts[outcome] += 1
    return {"workers": workers, "rc": result.returncode, "wall": wall, "cpu": cpu, "counts": counts, "files": per_file}


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="worker counts to run (0: serial)")
    parser.add_argument("--slowest", type=int, default=5, help="slowest test files to list per run")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --")
    args = parser.parse_args()

    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for workers in args.workers:
            run = run_suite(workers, os.path.join(scratch, f"junit-{workers}.xml"), args.pytest_args)
            runs.append(run)
            print(f"workers {workers}: {run['wall']:.0f} s wall, exit code {run['rc']}", flush=True)

    print(f"\n{os.cpu_count()} CPU(s), load average before the last run ended: {os.getloadavg()[0]:.1f}")
    print("| workers | wall | CPU (child processes) | passed | failed + errors | skipped | exit code |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        counts = run["counts"]
        print(
            f"| {run['workers'] or 'serial'} | {run['wall'] / 60:.1f} min | {run['cpu'] / 60:.1f} min "
            f"| {counts['passed']} | {counts['failure'] + counts['error']} | {counts['skipped']} | {run['rc']} |"
        )
    for run in runs:
        slowest = ", ".join(
            f"{name.removeprefix('tests.')} {seconds:.0f} s" for name, seconds in run["files"].most_common(args.slowest)
        )
        print(f"\nslowest files, {run['workers'] or 'serial'}: {slowest}")


if __name__ == "__main__":
    main()
