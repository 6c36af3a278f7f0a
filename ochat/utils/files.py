"""Atomic writes: a reader (or a crashed run) sees the old file or the whole new one, never half of either."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    _write_atomic(path, lambda handle: handle.write(text))


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 1) -> None:
    """JSON (UTF-8, not ASCII-escaped); `indent=None` writes it compact, as large token files want.

    Indented JSON is streamed to the file piece by piece (Python's encoder makes pieces either
    way), so a large report never exists as one string; compact JSON takes the faster C encoder.
    """
    if indent is None:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        write_text_atomic(path, text + "\n")
        return

    def write(handle):
        json.dump(data, handle, ensure_ascii=False, indent=indent, allow_nan=False)
        handle.write("\n")

    _write_atomic(path, write)


def _current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (os.umask would race other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(path: str | os.PathLike, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; the finished file gets what open() would give it (0666 less the umask)
        os.fchmod(descriptor, 0o666 & ~_current_umask())
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """One JSON object a line, written whole."""
    write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Records of a JSONL file; blank lines skipped, a line that is not UTF-8 JSON a ValueError naming file and line."""
    records = []
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{path}:{line_number}: not UTF-8 text (byte {raw[error.start]:#04x} at column {error.start + 1}; "
                    "save the file as UTF-8)"
                ) from None
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not valid JSON ({error.msg})") from None
            except (ValueError, RecursionError) as error:  # an integer over the digit limit, nesting too deep
                raise ValueError(f"{path}:{line_number}: not usable JSON ({error})") from None
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


class JsonListWriter:
    """A JSON list written one element at a time, then renamed into place: bounded memory for huge outputs.

    The bytes equal `write_json_atomic(path, elements, indent)`; an exception inside the
    `with` block (or `discard()`) leaves no file behind, and the old one untouched.

        with JsonListWriter("out.json") as out:
            for conversation in conversations:
                out.append(conversation)
    """

    def __init__(self, path: str | os.PathLike, indent: int | None = 1):
        self.path = Path(path)
        self.indent = indent
        self.count = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, self.temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.handle = os.fdopen(descriptor, "w", encoding="utf-8")
        self.handle.write("[")

    def append(self, element: Any) -> None:
        if self.indent is None:
            text = json.dumps(element, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            self.handle.write(("," if self.count else "") + text)
        else:
            text = json.dumps(element, ensure_ascii=False, indent=self.indent, allow_nan=False)
            padding = " " * self.indent
            self.handle.write(("," if self.count else "") + "\n" + padding + text.replace("\n", "\n" + padding))
        self.count += 1

    def commit(self) -> None:
        self.handle.write(("\n]" if self.count and self.indent is not None else "]") + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        if os.path.exists(self.temporary):
            os.unlink(self.temporary)

    def __enter__(self) -> JsonListWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def exit_on_termination_signals() -> None:
    """Make SIGTERM and SIGHUP exit through Python's unwinding (SystemExit 128 + signal), as Ctrl-C does.

    By default they end the process on the spot, and the atomic writers above leave their
    hidden temporary file behind (a killed run over a large dump: one as large as its output);
    unwound, their `except`/`with` blocks remove it. Call it in a command's `main`.
    """

    def exit_now(signum, _frame):
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, exit_now)


# The folder holding the `ochat` package: the repository root for a checkout or an editable install.
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def resolve_source_path(path: str | os.PathLike) -> str:
    """`path` as given when it exists; else, for a relative path, the same path under the source root.

    The README's commands name bundled files relative to the repository (`evaluation/vicuna`,
    `ochat/training_deepspeed/deepspeed_config.json`); this makes them work from any directory.
    """
    if os.path.exists(path) or os.path.isabs(path):
        return str(path)
    bundled = SOURCE_ROOT / path
    return str(bundled) if bundled.exists() else str(path)
