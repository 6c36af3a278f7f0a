"""Atomic writes: a reader (or a crashed run) sees the old file or the whole new one, never half of either."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 1) -> None:
    """JSON (UTF-8, not ASCII-escaped); `indent=None` writes it compact, as large token files want."""
    separators = (",", ":") if indent is None else None
    text = json.dumps(data, ensure_ascii=False, indent=indent, separators=separators, allow_nan=False)
    write_text_atomic(path, text + "\n")


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """One JSON object a line, written whole."""
    write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Records of a JSONL file; blank lines skipped, a broken line named by file and line number."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not valid JSON ({error.msg})") from None
    return records


def read_json_or_exit(path: str | os.PathLike, what: str = "input file") -> Any:
    """The parsed JSON of a file a user named on the command line; any problem exits with one line naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise SystemExit(f"error: {what} not found: {path}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise SystemExit(f"error: cannot read {what} {path}: {error}") from None
    except (json.JSONDecodeError, ValueError, RecursionError) as error:
        raise SystemExit(f"error: {path} is not valid JSON ({error})") from None
