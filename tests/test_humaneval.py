"""HumanEval through an OpenAI-compatible endpoint: code extraction, pass@1 and its interval, and a sandbox
in which hostile completions fail without harming the machine."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from evaluation.humaneval import build_program, extract_code, load_problems, wilson_interval
from evaluation.sandbox import Sandbox, SandboxLimits
from evaluation.scripted_judge import RunningServer, ScriptedJudge
from tests.helpers.repo import run_module

TIMEOUT_S = 5.0  # generous: a correct program must finish on a machine busy with other tests
PROBLEMS = load_problems(limit=6)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxLimits(timeout_s=TIMEOUT_S))


@pytest.fixture(scope="module")
def own_uid(sandbox):
    if sandbox.isolation != "netns+uid":
        pytest.skip(f"the sandbox runs as this user here ({sandbox.isolation}): only a uid of its own protects files")


@pytest.fixture()
def canary_dir():
    """A folder outside the sandbox that anyone may read: a file in it, and a private file."""
    folder = tempfile.mkdtemp(prefix="ochat-canary-")
    os.chmod(folder, 0o755)
    with open(os.path.join(folder, "canary.txt"), "w") as handle:
        handle.write("alive")
    os.chmod(os.path.join(folder, "canary.txt"), 0o644)
    with open(os.path.join(folder, "secret.txt"), "w") as handle:
        handle.write("secret")
    os.chmod(os.path.join(folder, "secret.txt"), 0o600)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def run_completion(sandbox: Sandbox, completion: str, problem: dict = PROBLEMS[0]):
    return sandbox.run(build_program(problem, completion))


def hostile(action: str) -> str:
    """A full `has_close_elements` that does `action` first, then answers correctly."""
    return (
        "def has_close_elements(numbers, threshold):\n"
        + "".join(f"    {line}\n" for line in action.strip().splitlines())
        + "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])\n"
    )


# ---------------------------------------------------------------- correct and wrong code


@pytest.mark.parametrize("index", [0, 2])
def test_the_canonical_solution_passes_as_a_body_and_as_a_full_function(sandbox, index):
    problem = PROBLEMS[index]
    assert run_completion(sandbox, problem["canonical_solution"], problem).passed
    assert run_completion(sandbox, problem["prompt"] + problem["canonical_solution"], problem).passed


def test_a_wrong_solution_fails(sandbox):
    result = run_completion(sandbox, "    return False\n")
    assert result.status == "failed" and "AssertionError" in result.output


def test_a_correct_hostile_looking_answer_still_passes_when_the_harm_is_refused(sandbox, own_uid):
    result = run_completion(
        sandbox, hostile("import os\ntry:\n    os.remove('/etc/hostname')\nexcept OSError:\n    pass")
    )
    assert result.passed, result.output
    assert os.path.exists("/etc/hostname")


# ---------------------------------------------------------------- hostile completions


def test_a_fork_bomb_is_stopped_within_the_timeout_and_leaves_no_process(sandbox):
    result = run_completion(
        sandbox, hostile("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
    )
    assert result.status in ("failed", "timeout")
    assert result.seconds < TIMEOUT_S + 5
    assert sandbox.leftover_processes() == []
    assert subprocess.run(["true"]).returncode == 0, "the host can still start processes"


def test_a_process_that_leaves_the_session_is_killed_when_the_run_ends(sandbox):
    result = run_completion(
        sandbox, hostile("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)")
    )
    assert result.passed
    assert sandbox.leftover_processes() == []


def test_rm_rf_outside_the_sandbox_deletes_nothing(sandbox, own_uid, canary_dir):
    action = f"import os, shutil\nshutil.rmtree({canary_dir!r}, ignore_errors=True)\nos.system('rm -rf {canary_dir}')"
    result = run_completion(sandbox, hostile(action + "\nraise SystemExit(1)"))
    assert result.status == "failed"
    with open(os.path.join(canary_dir, "canary.txt")) as handle:
        assert handle.read() == "alive"
    assert os.path.exists(os.path.join(canary_dir, "secret.txt"))


def test_files_outside_the_sandbox_cannot_be_overwritten_or_read_when_private(sandbox, own_uid, canary_dir):
    overwrite = f"open({os.path.join(canary_dir, 'canary.txt')!r}, 'w').write('dead')"
    assert run_completion(sandbox, hostile(overwrite)).status == "failed"
    read = f"print(open({os.path.join(canary_dir, 'secret.txt')!r}).read())"
    result = run_completion(sandbox, hostile(read))
    assert result.status == "failed" and "PermissionError" in result.output and "secret" not in result.output.split()
    with open(os.path.join(canary_dir, "canary.txt")) as handle:
        assert handle.read() == "alive"


def test_the_real_home_is_neither_home_nor_writable(sandbox, own_uid):
    real_home = os.path.expanduser("~")
    canary = os.path.join(real_home, f"ochat-sandbox-canary-{os.getpid()}")
    action = f"import os\nassert os.path.expanduser('~') != {real_home!r}\nopen({canary!r}, 'w').write('x')"
    result = run_completion(sandbox, hostile(action))
    assert result.status == "failed" and "PermissionError" in result.output
    assert not os.path.exists(canary)


def test_an_endless_loop_times_out(sandbox):
    result = run_completion(sandbox, hostile("while True:\n    pass"))
    assert result.status == "timeout"
    assert result.seconds < TIMEOUT_S + 5


def test_a_memory_bomb_fails_at_the_memory_limit(sandbox):
    result = run_completion(sandbox, hostile("hoard = bytearray(8 * 1024**3)"))
    assert result.status == "failed" and "MemoryError" in result.output


def test_a_huge_file_stops_at_the_file_size_limit(sandbox):
    result = run_completion(sandbox, hostile("open('big', 'wb').write(b'x' * (256 * 1024 * 1024))"))
    assert result.status == "failed"


def test_no_network_not_even_to_a_port_on_this_machine(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        action = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')"
        result = run_completion(sandbox, hostile(action))
        assert result.status == "failed" and "OSError" in result.output
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


def test_where_no_namespace_is_allowed_the_socket_module_is_disabled():
    guarded = Sandbox(SandboxLimits(timeout_s=TIMEOUT_S), isolation="socket_guard")
    result = run_completion(guarded, hostile("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)"))
    assert result.status == "failed" and "network access is disabled in the sandbox" in result.output


# ---------------------------------------------------------------- extraction and statistics


def test_code_is_taken_from_the_fenced_block_that_defines_the_entry_point():
    reply = "Example:\n```python\nprint(1)\n```\nSolution:\n```python\ndef f(x):\n    return x\n```\nDone."
    assert extract_code(reply, "f") == "def f(x):\n    return x"


def test_a_bare_reply_loses_its_prose_before_the_function():
    assert extract_code("Here you go:\ndef f(x):\n    return x\n", "f") == "def f(x):\n    return x"
    assert extract_code("    return x\n", "f") == "    return x"


def test_an_unindented_body_is_indented_into_the_prompt_function():
    problem = PROBLEMS[2]  # truncate_number
    program = build_program(problem, "return number % 1.0")
    assert problem["prompt"] + "    return number % 1.0" in program
    assert program.rstrip().endswith("check(truncate_number)")


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert wilson_interval(0, 10)[0] == 0.0 and round(wilson_interval(0, 10)[1], 4) == 0.2775
    assert wilson_interval(10, 10)[1] == 1.0


# ---------------------------------------------------------------- end to end through a server


def scripted_coder() -> ScriptedJudge:
    """Problems 0-2 answered right (fenced full function, bare body, prose then function), 3 wrong,
    4 an endless loop, 5 a fork bomb."""
    replies = [
        "```python\n" + PROBLEMS[0]["prompt"] + PROBLEMS[0]["canonical_solution"] + "```",
        PROBLEMS[1]["canonical_solution"],
        "Sure.\n" + PROBLEMS[2]["prompt"] + PROBLEMS[2]["canonical_solution"],
        "```python\n    return True\n```",
        "```python\n    while True:\n        pass\n```",
        "```python\n    import os\n    while True:\n        os.fork()\n```",
    ]
    script = [
        {"model": "coder", "match": problem["prompt"], "steps": [{"reply": reply}]}
        for problem, reply in zip(PROBLEMS, replies)
    ]
    return ScriptedJudge(script=script, judge_model="judge")


def run_humaneval(url: str, output: str, *extra: str) -> subprocess.CompletedProcess:
    args = ["--api-base", url, "--model", "coder", "--output_path", output, "--limit", "6", "--timeout_s", "4"]
    return run_module("evaluation.humaneval", *args, *extra, timeout=300)


def test_pass_at_1_through_a_server_counts_exactly_the_passing_problems(tmp_path):
    server = RunningServer(scripted_coder())
    try:
        result = run_humaneval(server.url, str(tmp_path))
    finally:
        server.stop()
    with open(tmp_path / "humaneval-first6_coder.summary.json") as handle:
        summary = json.load(handle)
    assert summary["pass@1"] == 0.5 and summary["problems"] == 6
    assert summary["statuses"] == {"passed": 3, "failed": 2, "timeout": 1}
    assert summary["ci95"] == pytest.approx(wilson_interval(3, 6))
    with open(tmp_path / "humaneval-first6_coder.jsonl") as handle:
        records = [json.loads(line) for line in handle]
    assert [record["task_id"] for record in records] == [f"HumanEval/{index}" for index in range(6)]
    assert [record["passed"] for record in records] == [True, True, True, False, False, False]
    assert "50.0%" in result.stdout


def test_continue_asks_only_the_problems_missing_from_an_interrupted_run(tmp_path):
    coder = scripted_coder()
    coder.script = coder.script[:4]  # no endless loop nor fork bomb: those two are already in the partial file
    done = [
        {"task_id": f"HumanEval/{index}", "model": "coder", "status": "failed", "passed": False, "seconds": 0.1}
        for index in (4, 5)
    ]
    (tmp_path / "humaneval-first6_coder.jsonl.partial").write_text("".join(json.dumps(r) + "\n" for r in done))
    server = RunningServer(coder)
    try:
        run_humaneval(server.url, str(tmp_path), "--continue")
    finally:
        server.stop()
    asked = [body for body in coder.bodies if body["model"] == "coder"]
    assert len(asked) == 4
    with open(tmp_path / "humaneval-first6_coder.summary.json") as handle:
        assert json.load(handle)["passed"] == 3
    assert not (tmp_path / "humaneval-first6_coder.jsonl.partial").exists()


def test_help_names_the_command():
    result = subprocess.run([sys.executable, "-m", "evaluation.humaneval", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--api_base" in result.stdout and "--timeout_s" in result.stdout
