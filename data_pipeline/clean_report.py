"""The clean stage's report (`NAME.report.json` beside `NAME.json`): where it goes, its order, its summary.

The report lists every entry of the input folder, so nothing is lost silently; see
`data_pipeline.clean_sharegpt` for its fields. Outputs are written atomically, and a run that
fails removes what it wrote.
"""

import sys
from pathlib import Path

from data_pipeline.sharegpt_dump import DUMP_SUFFIX
from ochat.utils.files import write_json_atomic

NOT_HTML = "not_html"  # status "skipped": a folder entry that is neither a *.html page nor a *.json dump


def entry_order(name):
    """Report order: by file name, a dump's records by their index (`d.json#2` before `d.json#10`)."""
    file_name, _, index = name.rpartition("#")
    if file_name.endswith(DUMP_SUFFIX) and index.isdigit():
        return file_name, int(index)
    return name, -1


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
