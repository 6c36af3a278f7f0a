"""Per-step cost of grammar-constrained decoding with the libraries that install here.

For each library: compile a JSON schema for the tiny model's tokenizer, then walk a
sequence token by token, each step computing the allowed-token mask, applying it to
random logits and taking the argmax (as the engine does), until the grammar ends or
`--steps` tokens. Prints compile time and milliseconds per step. Run from anywhere:

    python benchmarks/grammar_mask_cost.py --model_path /path/to/tiny_model
"""

from __future__ import annotations

import json
import re
import statistics
import time

import torch

from ochat.config import get_model_config, load_tokenizer
from ochat.utils.cli import ArgumentParser

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 4},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
        },
    },
    "required": ["name", "age", "tags", "address"],
    "additionalProperties": False,
}


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """int32 words [rows, words] -> bool [rows, vocab_size], bit i of word w allowing token 32 w + i."""
    bits = (bitmask[..., None] >> torch.arange(32, dtype=torch.int32)) & 1
    return bits.reshape(bitmask.shape[0], -1)[:, :vocab_size].bool()


def walk(mask_fn, advance_fn, vocab_size: int, stop_ids: set, steps: int, seed: int) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(steps):
        logits = torch.randn(1, vocab_size, generator=generator)
        start = time.perf_counter()
        allowed = mask_fn()
        logits.masked_fill_(~allowed, float("-inf"))
        token_id = int(logits.argmax())
        times.append(time.perf_counter() - start)
        if token_id in stop_ids or not advance_fn(token_id):
            break
    return times


def bench_llguidance(hf_tokenizer, vocab_size, stop_ids, steps, seed):
    import llguidance
    import llguidance.hf
    import llguidance.torch

    start = time.perf_counter()
    tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size, eos_token=sorted(stop_ids))
    grammar = llguidance.LLMatcher.grammar_from_json_schema(SCHEMA, defaults={"whitespace_flexible": False})
    matcher = llguidance.LLMatcher(tokenizer, grammar)
    compile_s = time.perf_counter() - start
    bitmask = llguidance.torch.allocate_token_bitmask(1, vocab_size)

    def mask():
        llguidance.torch.fill_next_token_bitmask(matcher, bitmask, 0)
        return unpack_bitmask(bitmask, vocab_size)

    return compile_s, walk(mask, matcher.consume_token, vocab_size, stop_ids, steps, seed)


def bench_xgrammar(hf_tokenizer, vocab_size, stop_ids, steps, seed):
    import xgrammar

    start = time.perf_counter()
    info = xgrammar.TokenizerInfo.from_huggingface(hf_tokenizer, vocab_size=vocab_size, stop_token_ids=sorted(stop_ids))
    compiled = xgrammar.GrammarCompiler(info).compile_json_schema(json.dumps(SCHEMA), any_whitespace=False)
    matcher = xgrammar.GrammarMatcher(compiled)
    compile_s = time.perf_counter() - start
    bitmask = xgrammar.allocate_token_bitmask(1, vocab_size)

    def mask():
        matcher.fill_next_token_bitmask(bitmask)
        return unpack_bitmask(bitmask, vocab_size)

    return compile_s, walk(mask, matcher.accept_token, vocab_size, stop_ids, steps, seed)


def bench_outlines_core(hf_tokenizer, vocab_size, stop_ids, steps, seed):
    import outlines_core

    start = time.perf_counter()
    eos = min(stop_ids)
    tokens: dict = {}
    for token_id in range(len(hf_tokenizer)):
        if token_id in stop_ids:
            continue
        piece = hf_tokenizer.convert_ids_to_tokens(token_id)
        byte = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
        text = bytes([int(byte.group(1), 16)]) if byte else piece.replace("\u2581", " ").encode()
        tokens.setdefault(text, []).append(token_id)
    vocabulary = outlines_core.Vocabulary(eos, tokens)
    regex = outlines_core.json_schema.build_regex_from_schema(json.dumps(SCHEMA), whitespace_pattern="")
    guide = outlines_core.Guide(outlines_core.Index(regex, vocabulary))
    compile_s = time.perf_counter() - start

    def mask():
        allowed = torch.zeros(1, vocab_size, dtype=torch.bool)
        allowed[0, guide.get_tokens()] = True
        return allowed

    def advance(token_id):
        guide.advance(token_id)
        return not guide.is_finished()

    return compile_s, walk(mask, advance, vocab_size, stop_ids, steps, seed)


LIBRARIES = {"llguidance": bench_llguidance, "xgrammar": bench_xgrammar, "outlines-core": bench_outlines_core}


def main():
    parser = ArgumentParser(description="Per-step mask cost of grammar libraries on the model's tokenizer.")
    parser.add_argument("--model_type", default="openchat_tiny")
    parser.add_argument("--model_path", required=True, help="model folder whose tokenizer the grammars are built for")
    parser.add_argument("--steps", type=int, default=200, help="most tokens per walk")
    parser.add_argument("--walks", type=int, default=5, help="walks (seeds) per library")
    args = parser.parse_args()

    config = get_model_config(args.model_type)
    tokenizer = load_tokenizer(config, args.model_path)
    hf_tokenizer, stop_ids = tokenizer.hf_tokenizer, set(tokenizer.stop_token_ids)
    vocab_size = len(hf_tokenizer)
    print("| library | compile ms | mask+apply ms/step (median) | p99 ms | steps |")
    print("|---|---|---|---|---|")
    for name, bench in LIBRARIES.items():
        try:
            results = [bench(hf_tokenizer, vocab_size, stop_ids, args.steps, seed) for seed in range(args.walks)]
        except Exception as error:  # a library that does not install or cannot take this tokenizer is reported
            print(f"| {name} | failed: {type(error).__name__}: {str(error)[:80]} | | | |")
            continue
        times = sorted(t for _, walk_times in results for t in walk_times)
        compile_ms = statistics.median(c for c, _ in results) * 1000
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
        print(f"| {name} | {compile_ms:.1f} | {statistics.median(times) * 1000:.3f} | {p99:.3f} | {len(times)} |")


if __name__ == "__main__":
    main()
