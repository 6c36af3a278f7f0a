"""Append-only JSONL logs that make a long run resumable: answers in progress, and the call log behind `--continue`.

A log gets one JSON line per finished item, appended and handed to the OS as the item
finishes, so a killed run loses only the items in flight; a last line cut short by the
kill is dropped on reading. The call log keys each line by `"key"` (a list of JSON scalars):
judge calls (`evaluation.judge`) and self-chat's seeds (`data_pipeline.self_chat`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

FSYNC_INTERVAL = 0.5
CheckCall = Callable[[Path, int, dict], None]  # refuses a recorded call (SystemExit), given its file and line number


def read_append_log(path: Path) -> list[dict]:
    """Records of an append-only JSONL log; a last line cut short by a kill is dropped from the file
    (so later appends stay clean), any other broken line is refused with its line number."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        print(f"{path}: dropping a partly written last line", file=sys.stderr)
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    records = []
    for number, line in enumerate(complete.split(b"\n")[:-1], 1):
        try:
            records.append(json.loads(line.decode("utf-8")))
        except (ValueError, RecursionError):  # not JSON, not UTF-8
            raise SystemExit(f"{path}:{number}: corrupt line; fix it or pass --overwrite to start again") from None
    return records


class CallLog:
    """The append-only record of finished calls behind `--continue`: judge calls, and self-chat's seeds."""

    def __init__(self, path: Path, resume: bool = False, overwrite: bool = False, check_call: CheckCall | None = None):
        if resume and overwrite:
            raise SystemExit("--continue and --overwrite exclude each other")
        self.path = Path(path)
        if overwrite:
            self.path.unlink(missing_ok=True)
        elif self.path.exists() and self.path.stat().st_size and not resume:
            raise SystemExit(
                f"{self.path} holds calls of an earlier run; pass --continue to resume or --overwrite to start again"
            )
        self.calls: dict[tuple, dict] = {}
        if self.path.exists():
            self.calls = {tuple(call["key"]): call for call in read_call_log(self.path, check_call)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")
        self._last_fsync = time.monotonic()

    def needs(self, key: tuple, content_sha256: Optional[str] = None) -> bool:
        """True when the call was never finished, ended on a transport error, or was asked about other content."""
        earlier = self.calls.get(tuple(key))
        if earlier is None or earlier.get("error"):
            return True
        return content_sha256 is not None and earlier.get("content_sha256") != content_sha256

    def record(self, call: dict) -> None:
        """Appends one call and hands it to the OS at once; fsyncs at most every FSYNC_INTERVAL seconds
        (an fsync per call would stall the event loop for milliseconds each time)."""
        self._handle.write(json.dumps(call, ensure_ascii=False) + "\n")
        self._handle.flush()
        if time.monotonic() - self._last_fsync >= FSYNC_INTERVAL:
            os.fsync(self._handle.fileno())
            self._last_fsync = time.monotonic()
        self.calls[tuple(call["key"])] = call

    def get(self, key: tuple) -> Optional[dict]:
        return self.calls.get(tuple(key))

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()


def read_call_log(path: Path, check_call: CheckCall | None = None) -> list[dict]:
    """The calls in a log (a last line cut short by a kill is dropped); refuses a file that is not a call log,
    and a line `check_call(path, line_number, call)` refuses."""
    calls = read_append_log(path)
    for number, call in enumerate(calls, 1):
        if not isinstance(call, dict) or not isinstance(call.get("key"), list):
            raise SystemExit(f'{path}:{number}: not a call-log line (no "key"); pass --overwrite to start again')
        if check_call is not None:
            check_call(path, number, call)
    return calls
