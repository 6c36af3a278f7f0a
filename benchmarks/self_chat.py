"""Self-chat methods compared: valid-dialogue rate, requests and wall time per dialogue.

`python -m data_pipeline.self_chat` runs with `--method transcript` (Baize: one request,
`[Human]`/`[AI]` transcript parsed) and `--method roleplay` (alternating calls) against:

- the scripted OpenAI-protocol server (`evaluation/scripted_judge.py`) with `--latency` per reply;
  for `transcript` its replies cycle through four kinds a capable model gives (a clean
  transcript; one cut off by max_tokens after a marker; `Human:`/`AI:` written without
  brackets; a plain answer with no transcript), for `roleplay` it echoes the last message;
- the ochat server with the tiny (untrained) model, which writes noise: what a weak model
  does with each method.

    python benchmarks/self_chat.py --seeds 24 --max_rounds 3
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from evaluation.scripted_judge import RunningServer, ScriptedJudge  # noqa: E402
from ochat.models.tiny_chat_model import prepare_tiny_chat_model  # noqa: E402
from ochat.utils.cli import ArgumentParser  # noqa: E402
from ochat.utils.server_process import ServerProcess  # noqa: E402

TRANSCRIPT_KINDS = (
    "Use a list comprehension.\n[Human] What about a generator?\n[AI] Use parentheses instead.\n"
    "[Human] Thanks!\n[AI] You're welcome.",
    "Use a list comprehension.\n[Human] What about a generator?\n[AI] ",
    "Use a list comprehension.\nHuman: What about a generator?\nAI: Use parentheses instead.",
    "Sure! A list comprehension is the idiomatic way to do this in Python.",
)
DEFAULT_WORK_DIR = REPO_ROOT / "benchmarks" / "_work" / "self_chat"


def main():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=24, help="seed questions per run")
    parser.add_argument("--max_rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05, help="scripted server: seconds per reply")
    parser.add_argument("--tiny_max_tokens", type=int, default=32, help="reply length for the tiny model")
    parser.add_argument("--work_dir", type=Path, default=DEFAULT_WORK_DIR)
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    seeds = [f"Question {index}: how do I build a list of squares in Python?" for index in range(args.seeds)]
    seeds_path = args.work_dir / "seeds.txt"
    seeds_path.write_text("\n".join(seeds) + "\n")

    rows = []
    script = [
        {"match": f"'{seed}'", "steps": [{"reply": TRANSCRIPT_KINDS[index % len(TRANSCRIPT_KINDS)]}]}
        for index, seed in enumerate(seeds)
    ]
    server = RunningServer(ScriptedJudge(script=script, judge_model="scripted", latency=args.latency))
    try:
        rows.append(run("scripted", "transcript", server.url, "scripted", seeds_path, args, 512))
        rows.append(run("scripted (echo)", "roleplay", server.url, "echo", seeds_path, args, 512))
    finally:
        server.stop()

    _, model_dir = prepare_tiny_chat_model("openchat_tiny", str(args.work_dir / "tiny"))
    with ServerProcess.start("openchat_tiny", model_dir, log_path=args.work_dir / "server.log") as tiny:
        for method in ("transcript", "roleplay"):
            rows.append(
                run("tiny model", method, tiny.api_base, "openchat_tiny", seeds_path, args, args.tiny_max_tokens)
            )

    print(f"{args.seeds} seeds, --max_rounds {args.max_rounds}; scripted latency {args.latency} s")
    print(
        f"{'endpoint':<18}{'method':<12}{'valid':>8}{'unparseable':>13}{'failed':>8}{'rounds/valid':>14}"
        f"{'requests/seed':>15}{'wall s':>9}"
    )
    for row in rows:
        print(
            f"{row['endpoint']:<18}{row['method']:<12}{row['valid_rate']:>8.1%}{row['unparseable']:>13}"
            f"{row['failed']:>8}{row['rounds']:>14.2f}{row['requests']:>15.2f}{row['wall']:>9.2f}"
        )


def run(endpoint, method, api_base, model, seeds_path, args, max_tokens):
    with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
        out_file = Path(scratch) / "dialogues.json"
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "data_pipeline.self_chat",
                "--seeds",
                str(seeds_path),
                "--api_base",
                api_base,
                "--model",
                model,
                "--method",
                method,
                "--max_rounds",
                str(args.max_rounds),
                "--max_tokens",
                str(max_tokens),
                "--parallel",
                "8",
                "--out_file",
                str(out_file),
            ],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - started
        entries = [json.loads(line) for line in out_file.with_name("dialogues.log.jsonl").read_text().splitlines()]
    valid = [entry for entry in entries if entry["status"] == "valid"]
    return {
        "endpoint": endpoint,
        "method": method,
        "valid_rate": len(valid) / len(entries),
        "unparseable": sum(entry["status"] == "unparseable" for entry in entries),
        "failed": sum(entry["status"] == "failed" for entry in entries),
        "rounds": sum(len(entry["conversation"]) // 2 for entry in valid) / max(1, len(valid)),
        "requests": sum(entry["requests"] or 0 for entry in entries) / len(entries),
        "wall": wall,
    }


if __name__ == "__main__":
    main()
