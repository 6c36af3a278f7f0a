"""One demo run's state: its output folder, the servers it started, and how it runs a command (output teed to a
log, a failure raised as `StepFailed` with the log's tail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from ochat.utils.server_process import ServerProcess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class StepFailed(RuntimeError):
    """A step could not finish; the message says why."""


class Demo:
    """What the steps share: the arguments, the output folder, the step running now and the servers started."""

    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        if args.fresh and os.path.isdir(self.out):
            shutil.rmtree(self.out)
        for folder in ("logs", ".done"):
            os.makedirs(os.path.join(self.out, folder), exist_ok=True)
        self.current_step = None
        self.server = None
        self.reference = None  # SmolLM2 as shipped, for --base smollm2
        self.server_url = None
        self.model_type = args.model_type

    # ---- paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    @property
    def model_dir(self) -> str:
        return self.path("model_eot")

    @property
    def checkpoint_dir(self) -> str:
        return self.path("checkpoint")

    @property
    def base_dir(self) -> str:
        """The base checkpoint without EOT: --model_path, or SmolLM2 imported from its GGUF."""
        return self.args.model_path or self.path("model_base")

    # ---- running -------------------------------------------------------------------------------
    def run(self, command: list[str], log_name: str, env: dict | None = None, show: bool = True) -> None:
        """Run a command, teeing its output to logs/LOG_NAME.log; a failure raises StepFailed with its tail."""
        log_path = self.path("logs", log_name + ".log")
        print(f"   $ {' '.join(command)}", flush=True)
        with open(log_path, "a", encoding="utf-8") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=dict(os.environ, **(env or {})),
                start_new_session=True,
            )
            tail: list[str] = []
            for line in process.stdout:
                log.write(line)
                tail = (tail + [line.rstrip()])[-15:]
                if show and "WARNING" not in line:
                    print("   | " + line.rstrip()[-200:], flush=True)
            code = process.wait()
        if code != 0:
            raise StepFailed(
                f"{command[0]} {' '.join(command[1:3])} ... exited with {code}; "
                f"log: {log_path}\n" + "\n".join("   | " + line for line in tail)
            )

    def python(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    # ---- servers -------------------------------------------------------------------------------
    def stop_server(self) -> None:
        ServerProcess.stop_all([server for server in (self.server, self.reference) if server is not None], timeout=30)
        self.server = self.reference = None
