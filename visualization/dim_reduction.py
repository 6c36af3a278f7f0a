"""Lay conversation embeddings out in 3-D (UMAP) and colour them by topic (K-Means).

    python -m visualization.dim_reduction --embeddings T.train.embeddings.json \\
        --texts T.train.text.json --out-file T.visualizer.json [--clusters 8] [--seed 0] [--html T.visualizer.html]

K-Means runs on the full embeddings (cosine geometry, since they are
normalised), UMAP on the same vectors with the cosine metric; both are seeded,
so the same inputs and seed give the same file. Tiny inputs work: with fewer
than five conversations UMAP cannot build its neighbour graph, so the points are
laid out by PCA instead (and `"reducer"` says so); the cluster count is capped
at the number of conversations.

Output (`--out-file`), read by `visualization/ui/visualizer.html`:

    {"format": "ochat-visualizer", "version": 1,
     "reducer": "umap", "seed": 0, "n_neighbors": 15, "embedding_model": "all-MiniLM-L6-v2",
     "clusters": [{"id": 0, "size": 2, "keywords": ["python", "list", "sort"]}, ...],
     "points": [{"index": 0, "x": 1.25, "y": -0.5, "z": 3.0, "cluster": 0,
                 "title": "How do I sort a list?",
                 "text": "Human: How do I sort a list?\\n\\nAssistant: Use sorted(xs).",
                 "turns": [{"from": "human", "role": "Human", "value": "How do I sort a list?"},
                           {"from": "gpt", "role": "Assistant", "value": "Use sorted(xs)."}]}, ...]}

`index` is the position in the input files; `text` is exactly what was
embedded; `turns` is the same conversation split at its end-of-turn tokens.
`--html` also writes a self-contained copy of the visualizer page with plotly.js
and this data inlined: one file that opens anywhere, offline.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ochat.utils.cli import ArgumentParser
from ochat.utils.files import read_json_or_exit, write_json_atomic
from visualization.conversation_text import make_title, split_turns, turns_to_text

DEFAULT_CLUSTERS = 8
DEFAULT_NEIGHBORS = 15
MIN_POINTS_FOR_UMAP = 5
KEYWORDS_PER_CLUSTER = 4
TEMPLATE_WORDS = {"human", "assistant", "user", "system"}  # role prefixes say nothing about a topic


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    embeddings, embedding_model = load_embeddings(args.embeddings)
    texts = load_texts(args.texts)
    if len(texts) != len(embeddings):
        sys.exit(
            f"error: {args.embeddings} holds {len(embeddings)} embeddings but {args.texts} holds {len(texts)} "
            "conversations; they must come from the same file"
        )

    started = time.perf_counter()
    layout = reduce_and_cluster(embeddings, args.clusters, args.seed, args.neighbors)
    turns_per_conversation = [split_turns(text) for text in texts]
    cleaned_texts = [turns_to_text(turns) for turns in turns_per_conversation]
    keywords = cluster_keywords(cleaned_texts, layout["labels"], layout["cluster_count"])
    print(f"laid out {len(texts)} conversations in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    result = {
        "format": "ochat-visualizer",
        "version": 1,
        "reducer": layout["reducer"],
        "seed": args.seed,
        "n_neighbors": layout["n_neighbors"],
        "embedding_model": embedding_model,
        "clusters": [
            {"id": cluster, "size": int((layout["labels"] == cluster).sum()), "keywords": keywords[cluster]}
            for cluster in range(layout["cluster_count"])
        ],
        "points": [
            {
                "index": index,
                "x": round(float(x), 4),
                "y": round(float(y), 4),
                "z": round(float(z), 4),
                "cluster": int(label),
                "title": make_title(turns),
                "text": text,
                "turns": turns,
            }
            for index, ((x, y, z), label, turns, text) in enumerate(
                zip(layout["coordinates"], layout["labels"], turns_per_conversation, cleaned_texts)
            )
        ],
    }
    Path(args.out_file).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out_file, result, indent=None)
    print(f"wrote {args.out_file}: {len(texts)} points in {layout['cluster_count']} clusters", file=sys.stderr)

    if args.html:
        from visualization.pages import VISUALIZER_PAGE, write_standalone_page

        write_standalone_page(VISUALIZER_PAGE, result, args.html)
        print(f"wrote self-contained page {args.html}", file=sys.stderr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m visualization.dim_reduction",
        description="Project conversation embeddings to 3-D with UMAP, colour them with K-Means, and write "
        "the JSON that visualization/ui/visualizer.html shows (optionally a self-contained HTML page too).",
    )
    parser.add_argument("--embeddings", required=True, help="output of `python -m visualization.embed`")
    parser.add_argument("--texts", required=True, help="the T.*.text.json those embeddings were made from")
    parser.add_argument("--out_file", required=True, help="where to write T.visualizer.json")
    parser.add_argument(
        "--clusters",
        type=int,
        default=DEFAULT_CLUSTERS,
        help=f"number of K-Means clusters (default {DEFAULT_CLUSTERS}; capped at the point count)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed for UMAP and K-Means (default 0)")
    parser.add_argument(
        "--neighbors",
        type=int,
        default=DEFAULT_NEIGHBORS,
        help=f"UMAP n_neighbors (default {DEFAULT_NEIGHBORS}; capped below the point count)",
    )
    parser.add_argument("--html", help="also write a self-contained visualizer page with the data inlined")
    args = parser.parse_args(argv)
    if args.clusters < 1:
        parser.error("--clusters must be at least 1")
    if args.neighbors < 2:
        parser.error("--neighbors must be at least 2")
    return args


def load_embeddings(path: str) -> tuple[np.ndarray, str | None]:
    """Read the embed output (or a bare list of vectors) into an (n, d) array."""
    data = read_json_or_exit(path, "embeddings file")
    model = None
    if isinstance(data, dict):
        model = data.get("model")
        data = data.get("embeddings")
    if data == []:
        sys.exit(f"error: {path} holds no embeddings: there is nothing to lay out")
    try:
        embeddings = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError):
        embeddings = None
    if embeddings is None or embeddings.ndim != 2 or (len(embeddings) and embeddings.shape[1] == 0):
        sys.exit(f'error: {path} must hold {{"embeddings": [[float, ...], ...]}} with vectors of one length')
    if not np.isfinite(embeddings).all():
        sys.exit(f"error: {path} holds NaN or infinite values")
    return embeddings, model


def load_texts(path: str) -> list[str]:
    texts = read_json_or_exit(path, "texts file")
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        sys.exit(f"error: {path} must hold a JSON list of strings (a T.*.text.json file)")
    return texts


def reduce_and_cluster(embeddings: np.ndarray, clusters: int, seed: int, neighbors: int = DEFAULT_NEIGHBORS) -> dict:
    """3-D coordinates and K-Means labels for each row; seeded, and sensible for any number of rows."""
    from sklearn.cluster import KMeans

    count = len(embeddings)
    if count == 0:
        return {
            "coordinates": np.zeros((0, 3)),
            "labels": np.zeros(0, dtype=int),
            "cluster_count": 0,
            "reducer": "none",
            "n_neighbors": None,
        }

    distinct = len(np.unique(embeddings, axis=0))
    cluster_count = max(1, min(clusters, distinct))
    if cluster_count == 1:
        labels = np.zeros(count, dtype=int)
    else:
        labels = KMeans(n_clusters=cluster_count, n_init=10, random_state=seed).fit_predict(embeddings)

    n_neighbors = None
    if count < MIN_POINTS_FOR_UMAP:
        coordinates, reducer = _pca_layout(embeddings), "pca"
    else:
        import umap

        n_neighbors = min(neighbors, count - 1)
        with warnings.catch_warnings():
            # UMAP warns that a fixed random_state disables parallelism: reproducibility is the point here.
            warnings.filterwarnings("ignore", message=".*random_state.*", category=UserWarning)
            coordinates = umap.UMAP(
                n_components=3, n_neighbors=n_neighbors, metric="cosine", random_state=seed, min_dist=0.1
            ).fit_transform(embeddings)
        reducer = "umap"
    return {
        "coordinates": np.asarray(coordinates, dtype=np.float64),
        "labels": np.asarray(labels, dtype=int),
        "cluster_count": cluster_count,
        "reducer": reducer,
        "n_neighbors": n_neighbors,
    }


def _pca_layout(embeddings: np.ndarray) -> np.ndarray:
    """3-D layout for a handful of points: PCA onto as many axes as the points allow, zeros for the rest."""
    from sklearn.decomposition import PCA

    coordinates = np.zeros((len(embeddings), 3))
    axes = min(3, len(embeddings) - 1)
    if axes > 0 and np.ptp(embeddings, axis=0).any():
        coordinates[:, :axes] = PCA(n_components=axes).fit_transform(embeddings)
    return coordinates


def cluster_keywords(texts: list[str], labels: np.ndarray, cluster_count: int) -> list[list[str]]:
    """A few words that set each cluster apart (highest mean TF-IDF), for the legend."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

    keywords: list[list[str]] = [[] for _ in range(cluster_count)]
    if cluster_count == 0:
        return keywords
    vectorizer = TfidfVectorizer(
        stop_words=sorted(TEMPLATE_WORDS | ENGLISH_STOP_WORDS),
        max_features=20000,
        token_pattern=r"(?u)\b[^\W\d_]{3,}\b",
        sublinear_tf=True,
    )
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # no usable words at all (empty or stop-word-only texts)
        return keywords
    vocabulary = vectorizer.get_feature_names_out()
    for cluster in range(cluster_count):
        members = labels == cluster
        if not members.any():
            continue
        mean_weights = np.asarray(matrix[members].mean(axis=0)).ravel()
        top = np.argsort(-mean_weights)[:KEYWORDS_PER_CLUSTER]
        keywords[cluster] = [str(vocabulary[index]) for index in top if mean_weights[index] > 0]
    return keywords


if __name__ == "__main__":
    main()
