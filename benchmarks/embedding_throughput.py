"""How fast conversations are embedded, and how long the 3-D layout takes for 1k and 10k of them.

    python benchmarks/embedding_throughput.py [--embed-count 300] [--layout-counts 1000 10000] [--threads 2]

Embedding: a seeded synthetic corpus in the pipeline's text format (1-6 rounds,
answers of 20-400 words, so some conversations fill several 256-token windows)
goes through `visualization.embed` exactly as the CLI runs it (clean, window,
embed with the bundled all-MiniLM-L6-v2, pool); model loading is timed apart.

Layout: `visualization.dim_reduction.reduce_and_cluster` (seeded UMAP to 3-D +
K-Means with 8 clusters, as the CLI runs it) on N vectors. Embedding 10k
conversations would take most of an hour on 2 cores, so the layout inputs are
unit vectors drawn around 12 random topic centres in 384 dimensions (the
embeddings' shape); numba's one-off compilation is timed apart, on 50 points.
"""

from __future__ import annotations

import os
import random
import time

from ochat.utils.cli import ArgumentParser

WORDS = (
    "python list function error loop class bread oven flour butter sugar travel train ticket hotel museum "
    "planet orbit star energy music guitar chord garden tomato soil water market price stock budget "
    "history empire war treaty language grammar verb network server request memory cache"
).split()


def synthetic_conversations(count: int, seed: int) -> list[str]:
    """Decoded samples as the data pipeline writes them ("<s>Human: ...<|end_of_turn|>Assistant: ...")."""
    rng = random.Random(seed)
    samples = []
    for _ in range(count):
        topic = rng.sample(WORDS, 6)
        turns = []
        for _ in range(rng.randint(1, 6)):
            question = " ".join(rng.choices(topic + WORDS, k=rng.randint(5, 30))) + "?"
            answer = " ".join(rng.choices(topic * 3 + WORDS, k=rng.randint(20, 400))) + "."
            turns.append(f"Human: {question}<|end_of_turn|>Assistant: {answer}<|end_of_turn|>")
        samples.append("<s>" + "".join(turns))
    return samples


def topic_vectors(count: int, dimension: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, dimension))
    vectors = centres[rng.integers(0, 12, size=count)] + 0.6 * rng.normal(size=(count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embed_count", type=int, default=300, help="conversations to embed")
    parser.add_argument("--layout_counts", type=int, nargs="+", default=[1000, 10000], help="points to lay out")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and numba")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import torch

    from visualization.conversation_text import clean_text
    from visualization.dim_reduction import reduce_and_cluster
    from visualization.embed import LocalEmbedder, embed_texts

    torch.set_num_threads(args.threads)
    rows = []

    started = time.perf_counter()
    embedder = LocalEmbedder()
    rows.append(("load all-MiniLM-L6-v2", "-", time.perf_counter() - started, "-"))

    texts = [clean_text(text) for text in synthetic_conversations(args.embed_count, args.seed)]
    started = time.perf_counter()
    vectors, chunks = embed_texts(embedder, texts, args.batch_size)
    elapsed = time.perf_counter() - started
    rows.append(
        (
            f"embed {len(texts)} conversations ({len(chunks)} windows)",
            len(texts),
            elapsed,
            f"{len(texts) / elapsed:.1f} conv/s, {len(chunks) / elapsed:.1f} windows/s",
        )
    )

    started = time.perf_counter()
    reduce_and_cluster(topic_vectors(50, 384, args.seed), 8, args.seed)
    rows.append(("UMAP + K-Means warm-up (numba compile, 50 points)", 50, time.perf_counter() - started, "-"))
    for count in args.layout_counts:
        points = topic_vectors(count, vectors.shape[1], args.seed)
        started = time.perf_counter()
        layout = reduce_and_cluster(points, 8, args.seed)
        elapsed = time.perf_counter() - started
        rows.append((f"UMAP 3-D + K-Means(8), {count} points", count, elapsed, f"reducer {layout['reducer']}"))

    print(f"\n{'step':<58} {'n':>6} {'seconds':>9}  rate")
    for name, count, seconds, rate in rows:
        print(f"{name:<58} {count!s:>6} {seconds:>9.1f}  {rate}")


if __name__ == "__main__":
    main()
