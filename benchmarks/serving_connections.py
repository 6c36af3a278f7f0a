"""Connection hygiene under load, against the real server on 127.0.0.1: half-sent requests, idle connections and
the connection cap, with the front process's memory before and after.

    python benchmarks/serving_connections.py --half_sent 1500             # starts the tiny model's server
    python benchmarks/serving_connections.py --half_sent 1500 --fuzz 5000  # the request fuzz first, as one run

Opens `--half_sent` connections that send part of a request's headers and stop, then times a normal chat
request beside them, waits for the server to close them (its header-read timeout), then fills the connection
cap and counts 503s, and checks `/health` and a chat request afterwards. Prints the front process's resident
memory (VmRSS) at start, after the optional fuzz, and after the connection tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from benchmarks.serving_fuzz import print_table, run_fuzz  # noqa: E402
from ochat.utils.cli import ArgumentParser  # noqa: E402

HEADER_READ_TIMEOUT, KEEPALIVE_TIMEOUT = 5.0, 10.0


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def chat_seconds(base_url: str, model: str) -> tuple[int, float]:
    payload = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0}
    ).encode()
    started = time.monotonic()
    request = urllib.request.Request(base_url + "/v1/chat/completions", payload, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.monotonic() - started


def closed_by_server(connections: list[socket.socket], deadline: float) -> int:
    closed = 0
    for connection in connections:
        connection.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            while connection.recv(65536):
                pass
            closed += 1
        except (TimeoutError, ConnectionResetError):
            pass
    return closed


def half_sent(port: int, count: int) -> list[socket.socket]:
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")
        connections.append(connection)
    return connections


def fill_the_cap(port: int, cap: int, beyond: int) -> dict[str, int]:
    """Open `cap + beyond` connections, each asking /health and then staying open; the answers' status lines
    counted. (Asked on every connection: with a full accept queue the server may accept them out of order.)"""
    held, outcomes = [], {}
    try:
        for _ in range(cap + beyond):
            connection = socket.create_connection(("127.0.0.1", port))
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(connection)
        for connection in held:
            connection.settimeout(10)
            try:
                line = connection.recv(200).split(b"\r\n")[0].decode(errors="replace")
            except (TimeoutError, ConnectionResetError) as error:
                line = type(error).__name__
            outcomes[line] = outcomes.get(line, 0) + 1
    finally:
        for connection in held:
            connection.close()
    return outcomes


def main(argv=None) -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--half_sent", type=int, default=1500, help="half-sent requests held open (default 1500)")
    parser.add_argument("--max_connections", type=int, default=2000, help="the server's cap (default 2000)")
    parser.add_argument("--fuzz", type=int, default=0, help="run the request fuzz with this many mutations first")
    parser.add_argument("--model", default="openchat_tiny")
    args = parser.parse_args(argv)
    from ochat.models.tiny_chat_model import prepare_tiny_chat_model
    from ochat.utils.server_process import ServerProcess

    work_dir = tempfile.mkdtemp(prefix="serving_connections_")
    _, model_dir = prepare_tiny_chat_model(args.model, os.path.join(work_dir, "tiny"))
    server = ServerProcess.start(
        args.model,
        model_dir,
        "--default_max_tokens", "8", "--max_batch_size", "8", "--ray_num_cpus", "2",
        "--header_read_timeout", str(HEADER_READ_TIMEOUT), "--keepalive_timeout", str(KEEPALIVE_TIMEOUT),
        "--max_connections", str(args.max_connections), "--logfile", os.path.join(work_dir, "requests.log"),
        log_path=os.path.join(work_dir, "server.out"),
    )  # fmt: skip
    pid = server.process.pid
    try:
        chat_seconds(server.base_url, args.model)
        print(f"front RSS at start: {rss_mib(pid):.0f} MiB")
        if args.fuzz:
            started = time.perf_counter()
            outcomes, failures = asyncio.run(run_fuzz(server.base_url, args.model, args.fuzz, seed=0))
            print_table(outcomes, time.perf_counter() - started)
            for failure in failures:
                print("FAILURE", failure)
            print(f"front RSS after the fuzz: {rss_mib(pid):.0f} MiB")
        connections = half_sent(server.port, args.half_sent)
        opened = time.monotonic()
        status, seconds = chat_seconds(server.base_url, args.model)
        print(f"{args.half_sent} half-sent requests open; a normal request: {status} in {seconds:.3f} s")
        print(f"front RSS with them open: {rss_mib(pid):.0f} MiB")
        closed = closed_by_server(connections, opened + HEADER_READ_TIMEOUT + 5)
        print(
            f"closed by the server: {closed} of {args.half_sent} within {time.monotonic() - opened:.1f} s "
            f"(header-read timeout {HEADER_READ_TIMEOUT:g} s)"
        )
        for connection in connections:
            connection.close()
        outcomes = fill_the_cap(server.port, args.max_connections, 200)
        print(f"{args.max_connections + 200} connections each asked /health (cap {args.max_connections}): {outcomes}")
        time.sleep(1)
        status, seconds = chat_seconds(server.base_url, args.model)
        health = urllib.request.urlopen(server.base_url + "/health", timeout=10).status
        print(f"afterwards: /health {health}, a normal request {status} in {seconds:.3f} s")
        time.sleep(KEEPALIVE_TIMEOUT)
        print(f"front RSS after the connection tests: {rss_mib(pid):.0f} MiB")
        with open(server.log_path, errors="replace") as log:
            print(f"server log: {sum(1 for _ in log)} lines")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
