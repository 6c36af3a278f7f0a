"""Request parsing: the typed pydantic models against plain `json.loads`, and what hostile bodies become.

    python benchmarks/serve_request_parsing.py

Prints the time to parse and validate a typical chat request and a 3 MB one
(`ochat.serving.protocol.parse_chat_request`, one pass in pydantic's Rust core)
next to `json.loads` alone (which the hand-written validators ran after), and
the outcome of each hostile body found by fuzzing.
"""

from __future__ import annotations

import json
import time

from ochat.serving.protocol import OpenAIError, parse_chat_request
from ochat.utils.cli import ArgumentParser

VALID = {
    "model": "openchat",
    "messages": [{"role": "user", "content": "Hello there, how are you?"}],
    "max_tokens": 64,
    "temperature": 0.7,
    "stream": True,
}


def best_of(function, argument, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(argument)
        times.append(time.perf_counter() - started)
    return min(times)


def outcome(raw: bytes) -> str:
    try:
        parse_chat_request(raw)
        return "accepted"
    except OpenAIError as error:
        return f"{error.status} param={error.param} code={error.code}"
    except Exception as error:  # what would have been a 500
        return f"CRASH {type(error).__name__}"


def main(argv=None) -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20, help="timing repeats; the best is printed (default 20)")
    args = parser.parse_args(argv)
    small = json.dumps(VALID).encode()
    large = json.dumps({**VALID, "messages": [{"role": "user", "content": "word " * (600 << 10)}]}).encode()
    print(f"{'body':<16}{'bytes':>10}{'json.loads ms':>16}{'parse_chat_request ms':>24}")
    for name, raw in (("typical", small), ("3 MB prompt", large)):
        print(
            f"{name:<16}{len(raw):>10}{best_of(json.loads, raw, args.repeats) * 1e3:>16.3f}"
            f"{best_of(parse_chat_request, raw, args.repeats) * 1e3:>24.3f}"
        )
    hostile = {
        "role as a list": json.dumps({**VALID, "messages": [{"role": ["user"], "content": "hi"}]}).encode(),
        "role as an object": json.dumps({**VALID, "messages": [{"role": {}, "content": "hi"}]}).encode(),
        "lone surrogate": small.replace(b"Hello", b"\\ud800"),
        "5,000-digit integer": small.replace(b'"max_tokens": 64', b'"max_tokens": ' + b"9" * 5000),
        "nested 1,000 deep": small.replace(b'"stream": true', b'"x": ' + b"[" * 1000 + b"]" * 1000),
        "NaN temperature": small.replace(b'"temperature": 0.7', b'"temperature": NaN'),
    }
    print(f"\n{'hostile body':<24}outcome")
    for name, raw in hostile.items():
        print(f"{name:<24}{outcome(raw)}")


if __name__ == "__main__":
    main()
