"""Run untrusted Python (a model's code with its tests) so that it cannot harm the machine it runs on.

Each run gets:
- a fresh temporary working folder, which is also its HOME and TMPDIR, removed afterwards;
- a minimal environment (PATH, HOME, TMPDIR, LANG) and `python -I` (no PYTHON* variables, no user site);
- a new session and, where namespaces are available, a PID namespace of its own: on the wall-clock timeout,
  or when it ends, its process group is killed, and with it the namespace, so every process it started dies
  and is reaped, even one that left the session with setsid() (the machine's init need not reap orphans);
- resource limits, soft = hard so the program cannot raise them: CPU seconds, address space, processes
  (RLIMIT_NPROC: a fork bomb stops there), file size, open files, no core files;
- no network.

How much isolation there is depends on the machine; `Sandbox.isolation` says which level is in use:

    netns+uid     run as root: `unshare --net --pid --fork --setuid U`: network and PID namespaces of its own (no
                  interface up, so not even 127.0.0.1 is reachable) and a uid of its own, unused by anything
                  else, so it cannot write or delete files it does not own (it owns only its folder), cannot
                  read private ones (root's home), and the process limit holds (root is exempt from
                  RLIMIT_NPROC); any process of that uid still alive at the end is killed too.
    netns         not root, user namespaces allowed: `unshare --user --net --pid --fork --kill-child`; the program
                  runs as the user, so the files the user may change are at its mercy.
    socket_guard  neither: the socket module is disabled inside the interpreter before the program runs.
                  That stops ordinary code, not code that means to get around it.

As root the interpreter must be one the sandbox uid can run: `sys.executable` if it can, else the system's
`/usr/bin/python3` (a pyenv Python under /root cannot be run by another uid). The program gets the standard
library of that interpreter, which is all HumanEval's problems use.
"""

from __future__ import annotations

import math
import os
import queue
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Optional

OUTPUT_TAIL_BYTES = 2000
# Sandbox uids: 64 per evaluating process, from its pid, so concurrent evaluations never share one.
SANDBOX_UID_BASE = 1_000_000
SLOTS_PER_PROCESS = 64

ISOLATION_LEVELS = ("netns+uid", "netns", "socket_guard")

SOCKET_GUARD = """
import socket as _socket_module
def _no_network(*args, **kwargs):
    raise OSError("network access is disabled in the sandbox")
for _name in ("socket", "create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
    setattr(_socket_module, _name, _no_network)
del _socket_module, _name
"""

# Runs first in the sandboxed interpreter: limits that the program cannot raise again, then the program.
PREAMBLE = """
import resource, runpy, sys
for _limit, _value in {limits!r}:
    resource.setrlimit(_limit, (_value, _value))
{guard}
sys.argv = ["program.py"]
runpy.run_path("program.py", run_name="__main__")
"""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    memory_mb: int = 1024
    max_processes: int = 16
    max_file_mb: int = 16
    max_open_files: int = 64


@dataclass
class SandboxResult:
    status: str  # "passed" (exit code 0), "failed" or "timeout"
    returncode: Optional[int]
    seconds: float
    output: str  # the last OUTPUT_TAIL_BYTES of stdout and stderr

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class Sandbox:
    """Runs Python programs under the strongest isolation this machine offers (see the module docstring)."""

    def __init__(self, limits: SandboxLimits = SandboxLimits(), isolation: Optional[str] = None):
        """`isolation` forces a level (one of ISOLATION_LEVELS); by default the strongest that works here."""
        self.limits = limits
        self._first_uid = SANDBOX_UID_BASE + os.getpid() * SLOTS_PER_PROCESS
        self._uids: queue.Queue[int] = queue.Queue()
        for slot in range(SLOTS_PER_PROCESS):
            self._uids.put(self._first_uid + slot)
        self.isolation, self.python = self._choose_isolation(isolation)

    def leftover_processes(self) -> list[int]:
        """Live processes of this sandbox's uids (only netns+uid runs under uids of its own): none, once runs end."""
        if self.isolation != "netns+uid":
            return []
        return _pids_of(set(range(self._first_uid, self._first_uid + SLOTS_PER_PROCESS)))

    def describe(self) -> dict:
        return {"isolation": self.isolation, "python": self.python, "limits": asdict(self.limits)}

    def run(self, program: str) -> SandboxResult:
        """Run `program` (Python source) once; passed means it exited with status 0 within the limits."""
        uid = self._uids.get()
        try:
            return self._run(program, uid)
        finally:
            self._uids.put(uid)

    def _run(self, program: str, uid: int) -> SandboxResult:
        as_uid = self.isolation == "netns+uid"
        folder = tempfile.mkdtemp(prefix="ochat-sandbox-")
        try:
            with open(os.path.join(folder, "program.py"), "w", encoding="utf-8") as handle:
                handle.write(program)
            if as_uid:
                _kill_processes_of(uid)  # none should be left, but a uid is only reused once it is empty
                os.chown(folder, uid, uid)
            with tempfile.TemporaryFile() as output:
                started = time.perf_counter()
                process = subprocess.Popen(
                    self._command(uid),
                    cwd=folder,
                    env={"PATH": "/usr/bin:/bin", "HOME": folder, "TMPDIR": folder, "LANG": "C.UTF-8"},
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                try:
                    returncode = process.wait(timeout=self.limits.timeout_s)
                    timed_out = False
                except subprocess.TimeoutExpired:
                    returncode, timed_out = None, True
                _kill_group(process.pid)
                if as_uid:
                    _kill_processes_of(uid)
                if timed_out:
                    process.wait()
                seconds = time.perf_counter() - started
                output.seek(max(0, output.seek(0, os.SEEK_END) - OUTPUT_TAIL_BYTES))
                text = output.read().decode("utf-8", "replace")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            status = "timeout"
        else:
            status = "passed" if returncode == 0 else "failed"
        return SandboxResult(status=status, returncode=returncode, seconds=round(seconds, 3), output=text)

    def _command(self, uid: int, isolation: Optional[str] = None, python: Optional[str] = None) -> list[str]:
        isolation = isolation or self.isolation
        limits = [
            (resource.RLIMIT_CPU, math.ceil(self.limits.timeout_s)),
            (resource.RLIMIT_AS, self.limits.memory_mb * 1024 * 1024),
            (resource.RLIMIT_NPROC, self._process_limit(isolation)),
            (resource.RLIMIT_FSIZE, self.limits.max_file_mb * 1024 * 1024),
            (resource.RLIMIT_NOFILE, self.limits.max_open_files),
            (resource.RLIMIT_CORE, 0),
        ]
        guard = SOCKET_GUARD if isolation == "socket_guard" else ""
        preamble = PREAMBLE.format(limits=limits, guard=guard)
        prefix = {
            "netns+uid": ["unshare", "--net", "--pid", "--fork", "--setgid", str(uid), "--setuid", str(uid), "--"],
            "netns": ["unshare", "--user", "--net", "--pid", "--fork", "--kill-child", "--"],
            "socket_guard": [],
        }[isolation]
        return [*prefix, python or self.python, "-I", "-c", preamble]

    def _process_limit(self, isolation: str) -> int:
        if isolation == "netns+uid":
            return self.limits.max_processes  # the uid is the sandbox's alone
        # RLIMIT_NPROC counts every process of the user: allow the sandbox that many beyond the ones running now.
        return len(_pids_of({os.getuid()})) + self.limits.max_processes

    def _choose_isolation(self, forced: Optional[str]) -> tuple[str, str]:
        if forced is not None and forced not in ISOLATION_LEVELS:
            raise ValueError(f"isolation must be one of {ISOLATION_LEVELS}, not {forced!r}")
        if forced == "socket_guard":
            return forced, sys.executable
        levels = [forced] if forced else ["netns+uid"] if os.geteuid() == 0 else ["netns"]
        pythons = [sys.executable, "/usr/bin/python3"]
        uid = self._uids.get()
        try:
            for isolation in levels:
                if not shutil.which("unshare"):
                    break
                for python in pythons:
                    if os.path.exists(python) and self._probe(uid, isolation, python):
                        return isolation, python
        finally:
            self._uids.put(uid)
        if forced is not None:
            raise RuntimeError(f"sandbox isolation {forced!r} is not available on this machine")
        return "socket_guard", sys.executable

    def _probe(self, uid: int, isolation: str, python: str) -> bool:
        folder = tempfile.mkdtemp(prefix="ochat-sandbox-probe-")
        try:
            with open(os.path.join(folder, "program.py"), "w", encoding="utf-8") as handle:
                handle.write("pass\n")
            if isolation == "netns+uid":
                os.chown(folder, uid, uid)
            result = subprocess.run(
                self._command(uid, isolation, python),
                cwd=folder,
                env={"PATH": "/usr/bin:/bin", "HOME": folder},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
            )
            return result.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_processes_of(uid: int) -> None:
    """SIGKILL every live process of `uid` until none is left (a fork bomb may still be forking)."""
    for _ in range(200):
        pids = _pids_of({uid})
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
    raise RuntimeError(f"processes of sandbox uid {uid} survive SIGKILL")


def _pids_of(uids: set[int]) -> list[int]:
    """Live (not zombie) processes whose real, effective or saved uid is one of `uids`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="utf-8") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if {int(uid) for uid in fields.get("Uid", "").split()[:3]} & uids:
            pids.append(int(entry))
    return pids
