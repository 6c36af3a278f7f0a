"""A model served by `ochat.serving.openai_api_server` in a child process: start, wait for /health, stop.

The demo, `evaluation.get_model_answer`, the tests and the benchmarks all start
servers this way, so a server that dies while loading is reported the same way
everywhere: with its exit code and the tail of its log.

    with ServerProcess.start("openchat_tiny", "tiny_eot", log_path="server.log") as server:
        client = OpenAI(base_url=server.api_base, api_key="none")
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ochat.utils.net import free_port


class ServerStartError(RuntimeError):
    """The server exited or never answered /health; the message carries its log tail."""


class ServerProcess:
    def __init__(self, process: subprocess.Popen, port: int, log_path: Path):
        self.process, self.port, self.log_path = process, port, Path(log_path)
        self.base_url = f"http://127.0.0.1:{port}"
        self.api_base = self.base_url + "/v1"
        self._terminated = False

    @classmethod
    def launch(
        cls,
        model_type: str,
        model_path: str,
        *extra_args: str,
        log_path: str | os.PathLike,
        port: int | None = None,
        env: dict | None = None,
        cwd: str | None = None,
    ) -> ServerProcess:
        """Start the server on 127.0.0.1 (a free port unless given) without waiting for it."""
        port = port or free_port()
        command = [
            sys.executable,
            "-m",
            "ochat.serving.openai_api_server",
            "--model_type",
            model_type,
            "--model_path",
            str(model_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra_args,
        ]
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                cwd=cwd,
            )
        return cls(process, port, log_path)

    @classmethod
    def start(
        cls, model_type: str, model_path: str, *extra_args: str, timeout: float = 300, **launch_options
    ) -> ServerProcess:
        """Launch and wait until /health answers 200; stops it and raises ServerStartError otherwise."""
        server = cls.launch(model_type, model_path, *extra_args, **launch_options)
        return server.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 300) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(
                    f"the server exited with code {self.process.returncode} before it was "
                    f"ready; last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if self.healthy():
                return self
            time.sleep(0.3)
        self.stop()
        raise ServerStartError(
            f"the server was not healthy after {timeout:.0f} s; last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/health", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL to the whole process group after `timeout` seconds."""
        self._terminate()
        if self.process.poll() is None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"server ignored SIGTERM for {timeout:.0f} s; killing its process group", file=sys.stderr)
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def _terminate(self) -> None:
        """Send the graceful-shutdown SIGTERM once; a second one would cut the server's clean-up short."""
        if self.process.poll() is None and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    @staticmethod
    def stop_all(servers, timeout: float = 60) -> None:
        """Stop several servers at once: their shutdowns (a few seconds of Ray clean-up each) overlap."""
        servers = list(servers)
        for server in servers:
            server._terminate()
        for server in servers:
            server.stop(timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
