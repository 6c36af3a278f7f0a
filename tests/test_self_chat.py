"""self_chat: Baize transcripts and role-play against a scripted OpenAI-protocol endpoint (unparseable replies,
429s, resume) and against the ochat server with the tiny model."""

import json
import subprocess
import sys

import pytest

from data_pipeline.import_conversations import import_file
from data_pipeline.self_chat import parse_transcript
from evaluation.scripted_judge import RunningServer, ScriptedJudge
from ochat.utils.server_process import ServerProcess
from tests.helpers.repo import REPO_ROOT, TINY_MODEL_TYPE, run_module

CHAT_MODEL = "chatbot"  # the scripted server's scripted model; any other name gets echo answers


def scripted_server(script):
    return RunningServer(ScriptedJudge(script=script, judge_model=CHAT_MODEL))


def write_seeds(path, seeds):
    path.write_text("\n".join(seeds) + "\n", encoding="utf-8")
    return path


def self_chat(server_url, seeds_path, out_file, *extra, model=CHAT_MODEL, check=True):
    args = [
        "--seeds",
        str(seeds_path),
        "--api_base",
        server_url,
        "--model",
        model,
        "--out_file",
        str(out_file),
        "--parallel",
        "4",
        "--retry_base_delay",
        "0.01",
        "--max_retry_delay",
        "0.05",
        *extra,
    ]
    if check:
        return run_module("data_pipeline.self_chat", *args)
    return subprocess.run(
        [sys.executable, "-m", "data_pipeline.self_chat", *args], cwd=REPO_ROOT, capture_output=True, text=True
    )


def log_entries(out_file):
    return [json.loads(line) for line in out_file.with_name(out_file.stem + ".log.jsonl").read_text().splitlines()]


def roles_and_values(record):
    return [(turn["from"], turn["value"]) for turn in record["conversations"]]


def test_parse_transcript_reads_markers_cuts_rounds_and_rejects_what_is_not_a_transcript():
    reply = "Use slicing.\n[Human] And tuples?\n[AI] The same.\n[Human] Sets?\n[AI] No order.\n[Human] Thanks"
    assert parse_transcript(reply, "How to reverse?", 2) == [
        ("human", "How to reverse?"),
        ("gpt", "Use slicing."),
        ("human", "And tuples?"),
        ("gpt", "The same."),
    ]
    assert parse_transcript("[Human] Q?\n[AI] A.\n[Human] More?\n[AI] Yes.", "Q?", 3)[1] == ("gpt", "A.")
    assert parse_transcript("just prose, no markers", "Q?", 3) is None
    assert parse_transcript("A.\n[AI] again", "Q?", 3) is None  # two AI statements in a row
    assert parse_transcript("A.\n[Human] \n[AI] B.", "Q?", 3) is None  # an empty statement
    assert parse_transcript("just prose", "Q?", 1) == [("human", "Q?"), ("gpt", "just prose")]


def test_transcripts_parsed_unparseable_counted_not_kept_and_429s_retried(tmp_path):
    server = scripted_server(
        [
            {
                "match": "'Why is the sky blue?'",
                "steps": [
                    {"reply": "Rayleigh scattering.\n[Human] Why red at sunset?\n[AI] Longer path.\n[Human] Bye"}
                ],
            },
            {"match": "'Tell me a joke'", "steps": [{"reply": "I would rather not."}]},
            {
                "match": "'What is Rust?'",
                "steps": [
                    {"status": 429, "retry_after": 0.01},
                    {"status": 429},
                    {"reply": "A language.\n[Human] Is it fast?\n[AI] Yes."},
                ],
            },
        ]
    )
    try:
        seeds = write_seeds(tmp_path / "seeds.txt", ["Why is the sky blue?", "Tell me a joke", "What is Rust?"])
        out = tmp_path / "self_chat.json"
        result = self_chat(server.url, seeds, out, "--method", "transcript", "--max_rounds", "3")
        dump = json.loads(out.read_text())
        assert [record["seed"] for record in dump] == ["Why is the sky blue?", "What is Rust?"]
        assert roles_and_values(dump[0]) == [
            ("human", "Why is the sky blue?"),
            ("gpt", "Rayleigh scattering."),
            ("human", "Why red at sunset?"),
            ("gpt", "Longer path."),
        ]
        assert all(record["model"] == CHAT_MODEL and record["method"] == "transcript" for record in dump)
        assert sorted(entry["status"] for entry in log_entries(out)) == ["unparseable", "valid", "valid"]
        assert "unparseable        1" in result.stdout
        assert [kind for _, rule, _, _, kind in server.judge.requests if rule == 2] == ["status", "status", "reply"]
    finally:
        server.stop()


def test_roleplay_alternates_assistant_and_human_calls_up_to_max_rounds(tmp_path):
    server = scripted_server([])
    try:
        seeds = write_seeds(tmp_path / "seeds.txt", ["How do plants grow?"])
        out = tmp_path / "self_chat.json"
        self_chat(server.url, seeds, out, "--max_rounds", "2", model="echo")
        [record] = json.loads(out.read_text())
        turns = roles_and_values(record)
        assert [role for role, _ in turns] == ["human", "gpt", "human", "gpt"]
        # the echo model answers "Answer from echo: <last user message>": the roles were flipped for the human side
        assert turns[1][1] == "Answer from echo: How do plants grow?"
        assert turns[2][1] == "Answer from echo: Answer from echo: How do plants grow?"
        assert record["model"] == "echo" and record["method"] == "roleplay"
        assert log_entries(out)[0]["requests"] == 3 == len(server.judge.requests)
    finally:
        server.stop()


def test_failed_seeds_are_asked_again_with_continue_and_only_they(tmp_path):
    server = scripted_server(
        [
            {"match": "'first'", "steps": [{"reply": "One.\n[Human] Two?\n[AI] Two."}]},
            {"match": "'second'", "steps": [{"status": 500}, {"reply": "Yes.\n[Human] Sure?\n[AI] Sure."}]},
        ]
    )
    try:
        seeds = write_seeds(tmp_path / "seeds.txt", ["first", "second"])
        out = tmp_path / "self_chat.json"
        self_chat(server.url, seeds, out, "--method", "transcript", "--max_retries", "0")
        assert [record["seed"] for record in json.loads(out.read_text())] == ["first"]
        assert sorted(entry["status"] for entry in log_entries(out)) == ["failed", "valid"]

        refused = self_chat(server.url, seeds, out, "--method", "transcript", check=False)
        assert refused.returncode == 1 and "--continue" in refused.stderr

        requests_before = len(server.judge.requests)
        self_chat(server.url, seeds, out, "--method", "transcript", "--continue")
        assert [record["seed"] for record in json.loads(out.read_text())] == ["first", "second"]
        assert [entry[1] for entry in server.judge.requests[requests_before:]] == [1]  # only the failed seed
    finally:
        server.stop()


def test_a_cut_log_line_is_dropped_and_its_seed_asked_again(tmp_path):
    server = scripted_server([{"match": "topic", "steps": [{"reply": "A.\n[Human] B?\n[AI] C."}]}])
    try:
        seeds = write_seeds(
            tmp_path / "seeds.jsonl", [json.dumps({"text": "topic one"}), json.dumps({"text": "topic two"})]
        )
        out = tmp_path / "self_chat.json"
        self_chat(server.url, seeds, out, "--method", "transcript")
        log_path = out.with_name("self_chat.log.jsonl")
        lines = log_path.read_text().splitlines(keepends=True)
        log_path.write_text(lines[0] + lines[1][: len(lines[1]) // 2])  # killed while writing the second line
        requests_before = len(server.judge.requests)
        self_chat(server.url, seeds, out, "--method", "transcript", "--continue")
        assert len(server.judge.requests) - requests_before == 1
        assert len(json.loads(out.read_text())) == 2
    finally:
        server.stop()


@pytest.mark.timeout(600)
def test_self_chat_against_the_ochat_server_with_the_tiny_model(tmp_path, tiny_model_dir):
    seeds = write_seeds(tmp_path / "seeds.txt", ["How do I sort a list?", "What is a prime number?"])
    with ServerProcess.start(TINY_MODEL_TYPE, tiny_model_dir, log_path=tmp_path / "server.log") as server:
        roleplay_out = tmp_path / "roleplay.json"
        self_chat(server.api_base, seeds, roleplay_out, "--max_rounds", "2", "--max_tokens", "8", model=TINY_MODEL_TYPE)
        transcript_out = tmp_path / "transcript.json"
        self_chat(
            server.api_base, seeds, transcript_out, "--method", "transcript", "--max_tokens", "8", model=TINY_MODEL_TYPE
        )
    dump = json.loads(roleplay_out.read_text())
    statuses = [entry["status"] for entry in log_entries(roleplay_out)]
    assert len(dump) == statuses.count("valid") and "failed" not in statuses
    for record in dump:
        assert record["model"] == TINY_MODEL_TYPE
        assert [turn["from"] for turn in record["conversations"]][:2] == ["human", "gpt"]
        assert all(turn["value"].strip() for turn in record["conversations"])
    transcript_statuses = [entry["status"] for entry in log_entries(transcript_out)]
    assert sorted(transcript_statuses) in (["unparseable"] * 2, ["unparseable", "valid"], ["valid"] * 2)
    # what self_chat writes is a ShareGPT dump the pipeline reads back
    conversations, report = import_file(roleplay_out, "sharegpt_json", source="self_chat")
    assert report["total_records"] == len(dump) and report["kept"] + report["duplicates"] == len(dump)
