"""The embedding and dimension-reduction CLIs, run as a user runs them, on the offline MiniLM model.

A planted corpus of two topics (Python code questions, baking questions) must
come out as two clean clusters; the OpenAI backend is exercised against a real
scripted `/v1/embeddings` server on a loopback port.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from visualization.conversation_text import clean_text, make_title, split_turns

REPO_ROOT = Path(__file__).resolve().parent.parent
EOT = "<|end_of_turn|>"

CODE_QUESTIONS = [
    "How do I reverse a list in Python?",
    "Why does my Python for loop raise IndexError?",
    "How can I read a CSV file with pandas?",
    "What does a Python decorator do?",
    "How do I sort a dictionary by value in Python?",
    "How do I write a unit test with pytest?",
]
BAKING_QUESTIONS = [
    "How long should I bake banana bread?",
    "Why did my sourdough loaf come out flat?",
    "How do I make fluffy pancakes?",
    "Can I replace butter with oil in a cake recipe?",
    "What temperature should I bake chocolate chip cookies at?",
    "How do I keep pie crust from getting soggy?",
]
CODE_ANSWER = "You can do it like this:\n\n```python\nitems = [3, 1, 2]\nitems.sort()\nprint(items)\n```\n\nThe list is sorted in place."
BAKING_ANSWER = (
    "Preheat the oven to 180 C, mix the flour, sugar, eggs and butter, then bake for about 45 minutes until golden."
)


def run_cli(module: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(f"python -m {module} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def decoded_sample(*turns: str) -> str:
    """A sample as the data pipeline decodes it: BOS, then "Role: text<|end_of_turn|>" per turn."""
    roles = ["Human", "Assistant"]
    return "<s>" + "".join(f"{roles[i % 2]}: {text}{EOT}" for i, text in enumerate(turns))


def planted_corpus() -> tuple[list[str], list[int]]:
    """Two topics, 12 conversations each, shuffled; plus one long conversation (beyond the model's window)."""
    rng = random.Random(3)
    samples = [(decoded_sample(q, CODE_ANSWER, "Thanks!", "You're welcome."), 0) for q in CODE_QUESTIONS * 2]
    samples += [(decoded_sample(q, BAKING_ANSWER, "Thanks!", "You're welcome."), 1) for q in BAKING_QUESTIONS * 2]
    rng.shuffle(samples)
    long_answer = " ".join([BAKING_ANSWER] * 40)  # about 1,000 word pieces: four windows
    samples.append((decoded_sample("Tell me everything about baking bread.", long_answer), 1))
    return [text for text, _ in samples], [topic for _, topic in samples]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """The planted corpus, embedded by the CLI and laid out twice with the same seed (in parallel)."""
    folder = tmp_path_factory.mktemp("planted")
    texts, topics = planted_corpus()
    (folder / "T.train.text.json").write_text(json.dumps(texts))
    (folder / "topics.json").write_text(json.dumps(topics))
    run_cli(
        "visualization.embed",
        "--in-file",
        str(folder / "T.train.text.json"),
        "--out-file",
        str(folder / "T.train.embeddings.json"),
        "--batch-size",
        "8",
    )
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "visualization.dim_reduction",
                "--embeddings",
                str(folder / "T.train.embeddings.json"),
                "--texts",
                str(folder / "T.train.text.json"),
                "--out-file",
                str(folder / f"run{run}.visualizer.json"),
                "--clusters",
                "2",
                "--seed",
                "7",
                "--neighbors",
                "5",
            ]
            + (["--html", str(folder / "map.html")] if run == 0 else []),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in range(2)
    ]
    for process in runs:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    return folder


# ------------------------------------------------------------------ text cleaning


def test_cleaning_drops_special_tokens_and_turns_eot_into_blank_lines():
    sample = "<s>Human: Sort this?<|end_of_turn|>Assistant: ```py\nsorted(x)\n```<|end_of_turn|>"
    assert clean_text(sample) == "Human: Sort this?\n\nAssistant: ```py\nsorted(x)\n```"


def test_turns_keep_their_roles_for_every_template():
    assert split_turns("User: hi<|end_of_turn|>Assistant: hello<|end_of_turn|><|endoftext|>") == [
        {"from": "human", "role": "User", "value": "hi"},
        {"from": "gpt", "role": "Assistant", "value": "hello"},
    ]
    assert split_turns("no template here")[0]["from"] == "unknown"


def test_title_is_the_first_human_line_cut_at_a_word():
    turns = split_turns(decoded_sample("Explain " + "very " * 40 + "long things\nsecond line", "ok"))
    title = make_title(turns)
    assert title.startswith("Explain very") and title.endswith("…") and len(title) <= 80


# ------------------------------------------------------------------ embed


def test_embed_writes_one_unit_vector_per_conversation(corpus_dir):
    result = json.loads((corpus_dir / "T.train.embeddings.json").read_text())
    texts = json.loads((corpus_dir / "T.train.text.json").read_text())
    vectors = np.asarray(result["embeddings"])
    assert vectors.shape == (len(texts), 384) == (result["count"], result["dimension"])
    assert result["model"] == "all-MiniLM-L6-v2" and result["backend"] == "local"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_long_conversation_is_pooled_over_windows_not_cut(corpus_dir):
    result = json.loads((corpus_dir / "T.train.embeddings.json").read_text())
    assert result["chunked_texts"] == 1
    vectors = np.asarray(result["embeddings"])
    topics = json.loads((corpus_dir / "topics.json").read_text())
    baking_centre = vectors[[i for i, topic in enumerate(topics[:-1]) if topic == 1]].mean(axis=0)
    code_centre = vectors[[i for i, topic in enumerate(topics[:-1]) if topic == 0]].mean(axis=0)
    assert vectors[-1] @ baking_centre > vectors[-1] @ code_centre


def test_embed_rejects_a_file_that_is_not_a_list_of_strings(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "a list"}))
    result = run_cli(
        "visualization.embed", "--in-file", str(bad), "--out-file", str(tmp_path / "out.json"), check=False
    )
    assert result.returncode != 0 and "JSON list of strings" in result.stderr
    assert not (tmp_path / "out.json").exists()


# ------------------------------------------------------------------ dim_reduction


def test_visualizer_file_has_a_point_per_conversation(corpus_dir):
    texts = json.loads((corpus_dir / "T.train.text.json").read_text())
    result = json.loads((corpus_dir / "run0.visualizer.json").read_text())
    assert result["reducer"] == "umap" and len(result["points"]) == len(texts)
    for index, point in enumerate(result["points"]):
        assert point["index"] == index
        assert all(np.isfinite(point[axis]) for axis in "xyz")
        assert point["cluster"] in (0, 1)
        assert point["text"] == clean_text(texts[index])
        assert [turn["from"] for turn in point["turns"]][:2] == ["human", "gpt"]
        assert point["title"] and "<s>" not in point["text"] and EOT not in point["text"]
    assert sum(cluster["size"] for cluster in result["clusters"]) == len(texts)


def test_planted_topics_land_in_separate_clusters(corpus_dir):
    topics = json.loads((corpus_dir / "topics.json").read_text())
    result = json.loads((corpus_dir / "run0.visualizer.json").read_text())
    clusters = [point["cluster"] for point in result["points"]]
    code_clusters = {cluster for cluster, topic in zip(clusters, topics) if topic == 0}
    baking_clusters = {cluster for cluster, topic in zip(clusters, topics) if topic == 1}
    assert len(code_clusters) == 1 and len(baking_clusters) == 1 and code_clusters != baking_clusters
    keywords = {cluster["id"]: set(cluster["keywords"]) for cluster in result["clusters"]}
    assert keywords[baking_clusters.pop()] & {"bake", "flour", "oven", "butter", "sugar"}


def test_same_seed_gives_the_same_file(corpus_dir):
    assert (corpus_dir / "run0.visualizer.json").read_bytes() == (corpus_dir / "run1.visualizer.json").read_bytes()


def test_html_output_is_self_contained(corpus_dir):
    html = (corpus_dir / "map.html").read_text()
    assert "../static/" not in html and "<script src=" not in html
    assert len(html) > 3_000_000  # plotly.js is inlined
    result = json.loads((corpus_dir / "run0.visualizer.json").read_text())
    assert json.dumps(result["points"][0]["title"], ensure_ascii=False) in html


@pytest.mark.parametrize("count", [1, 2, 4])
def test_tiny_inputs_still_give_a_layout(tmp_path, count):
    rng = np.random.default_rng(count)
    (tmp_path / "emb.json").write_text(json.dumps(rng.normal(size=(count, 8)).tolist()))
    (tmp_path / "texts.json").write_text(json.dumps([decoded_sample(f"question {i}", "answer") for i in range(count)]))
    run_cli(
        "visualization.dim_reduction",
        "--embeddings",
        str(tmp_path / "emb.json"),
        "--texts",
        str(tmp_path / "texts.json"),
        "--out-file",
        str(tmp_path / "out.json"),
        "--clusters",
        "8",
    )
    result = json.loads((tmp_path / "out.json").read_text())
    assert len(result["points"]) == count and result["reducer"] == "pca"
    assert len(result["clusters"]) == count  # capped at the number of conversations


def test_mismatched_embeddings_and_texts_is_a_clear_error(tmp_path):
    (tmp_path / "emb.json").write_text(json.dumps({"embeddings": [[0.1, 0.2], [0.3, 0.4]]}))
    (tmp_path / "texts.json").write_text(json.dumps(["only one"]))
    result = run_cli(
        "visualization.dim_reduction",
        "--embeddings",
        str(tmp_path / "emb.json"),
        "--texts",
        str(tmp_path / "texts.json"),
        "--out-file",
        str(tmp_path / "out.json"),
        check=False,
    )
    assert result.returncode != 0 and "holds 2 embeddings but" in result.stderr


# ------------------------------------------------------------------ OpenAI-compatible backend


class ScriptedEmbeddingServer:
    """A real aiohttp `/v1/embeddings` server on a loopback port: hashed bag-of-words vectors, first request fails."""

    def __init__(self, fail_first: int = 1):
        self.fail_first = fail_first
        self.batches: list[list[str]] = []
        self.failures = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.failures < self.fail_first:
            self.failures += 1
            return web.json_response(
                {"error": {"message": "overloaded", "type": "server_error"}}, status=503, headers={"retry-after": "0"}
            )
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.batches.append(inputs)
        data = [
            {"object": "embedding", "index": i, "embedding": bag_of_words_vector(text)} for i, text in enumerate(inputs)
        ]
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 0, "total_tokens": 0}}
        )

    def __enter__(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/embeddings", self.handle)
        self.runner = web.AppRunner(app)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.runner.setup(), self.loop).result()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        asyncio.run_coroutine_threadsafe(site.start(), self.loop).result()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def bag_of_words_vector(text: str, dimension: int = 16) -> list[float]:
    vector = [0.0] * dimension
    for word in text.lower().split():
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % dimension] += 1.0
    return vector


def test_openai_backend_batches_retries_and_pools_long_texts(tmp_path):
    texts = [decoded_sample(f"question number {i}", "short answer") for i in range(5)]
    texts.append(decoded_sample("long", " ".join(["word"] * 100)))  # 500+ characters: several windows
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    server = ScriptedEmbeddingServer(fail_first=1)
    with server as api_base:
        run_cli(
            "visualization.embed",
            "--in-file",
            str(tmp_path / "texts.json"),
            "--out-file",
            str(tmp_path / "out.json"),
            "--api-base",
            api_base,
            "--model",
            "scripted-embedder",
            "--batch-size",
            "4",
            "--api-max-chars",
            "120",
        )
    assert server.failures == 1  # the 503 was retried, not fatal
    windows = [text for batch in server.batches for text in batch]
    assert all(len(batch) <= 4 for batch in server.batches) and len(windows) > len(texts)
    assert all(len(window) <= 120 for window in windows)
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["backend"] == "openai" and result["model"] == "scripted-embedder"
    assert result["count"] == 6 and result["dimension"] == 16 and result["chunked_texts"] == 1
    np.testing.assert_allclose(np.linalg.norm(result["embeddings"], axis=1), 1.0, atol=1e-4)


# ------------------------------------------------------------------ the bundled corpus


def test_bundled_corpus_goes_from_text_file_to_map(tiny_data_dir, tmp_path):
    """The pipeline's own text output (its first 16 conversations, to keep the test short) through both CLIs."""
    texts = json.loads((Path(tiny_data_dir) / "openchat_tiny.train.text.json").read_text())[:16]
    assert len(texts) == 16
    (tmp_path / "T.train.text.json").write_text(json.dumps(texts))
    run_cli(
        "visualization.embed",
        "--in-file",
        str(tmp_path / "T.train.text.json"),
        "--out-file",
        str(tmp_path / "T.train.embeddings.json"),
    )
    run_cli(
        "visualization.dim_reduction",
        "--embeddings",
        str(tmp_path / "T.train.embeddings.json"),
        "--texts",
        str(tmp_path / "T.train.text.json"),
        "--out-file",
        str(tmp_path / "T.visualizer.json"),
        "--clusters",
        "3",
        "--html",
        str(tmp_path / "T.visualizer.html"),
    )
    result = json.loads((tmp_path / "T.visualizer.json").read_text())
    assert len(result["points"]) == len(texts) and len(result["clusters"]) == 3
    for point in result["points"]:
        assert point["turns"][0]["from"] == "human" and point["title"] != "(empty conversation)"
        assert "<s>" not in point["text"] and EOT not in point["text"]
    assert (tmp_path / "T.visualizer.html").stat().st_size > 3_000_000
