"""KV-cache layout at equal budget: the engine's left-padded batch against a per-row layout.

    python benchmarks/kv_layout.py --model_path /path/to/model [--budget 3000] [--requests 32]

The workload mixes short and long prompts (`--short`/`--long` tokens, alternating) with a
fixed number of greedy new tokens each, all submitted at once, under the same KV budget:

- left-padded (`GenerationEngine`, what the server runs): one cache for the batch, every row
  as long as the longest one plus spare room, so the budget counts rows x columns.
- per-row: each sequence keeps its own exact-length cache and the budget counts the sum of
  their lengths, so it holds more sequences; each decode step gathers the rows into one padded
  batch for the forward (the copy a paged-attention kernel would avoid) and splits it back.

Printed per layout: sequences held (mean and most, per step), decode steps, output tokens per
second of wall time and per second of this process's CPU time (steadier on a shared machine),
and whether every greedy output equals the other layout's.
"""

from __future__ import annotations

import statistics
import time

import torch

from ochat.config import get_model_config, load_tokenizer
from ochat.models import load_model
from ochat.serving.engine import GenerationEngine
from ochat.serving.engine_types import SamplingParams
from ochat.serving.kv_cache import left_pad, make_cache
from ochat.utils.cli import ArgumentParser


class PerRowEngine:
    """Greedy continuous batching where every sequence owns an exact-length cache (for measurement only)."""

    def __init__(self, model, stop_ids, budget_tokens: int, max_batch_size: int):
        self.model, self.stop_ids = model, set(stop_ids)
        self.budget_tokens, self.max_batch_size = budget_tokens, max_batch_size
        self.waiting: list[dict] = []
        self.running: list[dict] = []

    def add(self, seq_id: str, prompt: list[int], max_tokens: int) -> None:
        self.waiting.append({"id": seq_id, "prompt": prompt, "out": [], "max": max_tokens, "kv": None})

    def held(self) -> int:
        return sum(row["kv"][0][0].shape[2] for row in self.running)

    @torch.inference_mode()
    def step(self) -> list[tuple[str, int, bool]]:
        events = []
        while self.running and self.held() + len(self.running) > self.budget_tokens:  # grow by one each: preempt
            newest = self.running.pop()
            newest["kv"] = None
            self.waiting.insert(0, newest)
        if self.running:
            events += self._decode()
        while self.waiting and len(self.running) < self.max_batch_size:
            candidate = self.waiting[0]
            if self.held() + len(candidate["prompt"]) + len(candidate["out"]) + 1 > self.budget_tokens:
                break
            events += self._prefill(self.waiting.pop(0))
        return events

    def _finish(self, row, token: int) -> tuple[str, int, bool]:
        row["out"].append(token)
        done = token in self.stop_ids or len(row["out"]) >= row["max"]
        return row["id"], token, done

    def _prefill(self, row) -> list:
        ids = row["prompt"] + row["out"]
        output = self.model(input_ids=torch.tensor([ids]), past_key_values=make_cache([], room_limit=0), use_cache=True)
        row["kv"] = [
            (k.clone(), v.clone()) for k, v in ((layer.keys, layer.values) for layer in output.past_key_values.layers)
        ]
        event = self._finish(row, int(output.logits[0, -1].argmax()))
        if not event[2]:
            self.running.append(row)
        return [event]

    def _decode(self) -> list:
        rows = self.running
        lengths = [row["kv"][0][0].shape[2] for row in rows]
        longest = max(lengths)
        tensors = [
            (
                torch.cat([left_pad(row["kv"][layer][0], longest, 2) for row in rows]),
                torch.cat([left_pad(row["kv"][layer][1], longest, 2) for row in rows]),
            )
            for layer in range(len(rows[0]["kv"]))
        ]
        mask = torch.zeros((len(rows), longest + 1), dtype=torch.long)
        for index, length in enumerate(lengths):
            mask[index, longest - length :] = 1
        output = self.model(
            input_ids=torch.tensor([[row["out"][-1]] for row in rows]),
            attention_mask=mask,
            position_ids=torch.tensor([[length] for length in lengths]),
            past_key_values=make_cache(tensors, room_limit=longest + 1),
            use_cache=True,
        )
        layers = output.past_key_values.layers
        events = []
        for index, (row, length) in enumerate(zip(rows, lengths)):
            start = longest - length
            row["kv"] = [
                (layer.keys[index : index + 1, :, start:].clone(), layer.values[index : index + 1, :, start:].clone())
                for layer in layers
            ]
            events.append(self._finish(row, int(output.logits[index, -1].argmax())))
        self.running = [row for row, event in zip(rows, events) if not event[2]]
        return events


class EngineSteps:
    """The engine's events in the (seq_id, token, done) shape `run` reads."""

    def __init__(self, engine: GenerationEngine):
        self.engine = engine

    def step(self) -> list[tuple[str, int, bool]]:
        return [(e.seq_id, e.token_id, e.finish_reason is not None) for e in self.engine.step()]


def run(engine, held, prompts) -> dict:
    outputs = {str(i): [] for i in range(len(prompts))}
    finished, holding, steps = set(), [], 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while len(finished) < len(prompts):
        for seq_id, token, done in engine.step():
            if token is not None:
                outputs[seq_id].append(token)
            if done:
                finished.add(seq_id)
        holding.append(held(engine))
        steps += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    produced = sum(map(len, outputs.values()))
    return {
        "outputs": outputs,
        "held_mean": statistics.mean(holding),
        "held_max": max(holding),
        "steps": steps,
        "tokens_per_s": produced / elapsed,
        "tokens_per_cpu_s": produced / cpu,
    }


def main():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_type", default="openchat_tiny")
    parser.add_argument("--model_path", required=True)
    parser.add_argument("--budget", type=int, default=3000, help="KV budget in tokens, the same for both layouts")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--short", type=int, default=20, help="tokens of the short prompts")
    parser.add_argument("--long", type=int, default=400, help="tokens of the long prompts")
    parser.add_argument("--max_tokens", type=int, default=32)
    parser.add_argument("--max_batch_size", type=int, default=32)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = get_model_config(args.model_type)
    tokenizer = load_tokenizer(config, args.model_path)
    model = load_model(config, args.model_path).eval()
    generator = torch.Generator().manual_seed(0)
    vocab = len(tokenizer.hf_tokenizer)
    prompts = [
        torch.randint(3, vocab - 1, (args.long if i % 4 == 0 else args.short,), generator=generator).tolist()
        for i in range(args.requests)
    ]

    padded = GenerationEngine(
        model, tokenizer.stop_token_ids, config.max_context, args.max_batch_size, kv_cache_tokens=args.budget
    )
    per_row = PerRowEngine(model, tokenizer.stop_token_ids, args.budget, args.max_batch_size)
    for i, prompt in enumerate(prompts):
        padded.add(str(i), prompt, SamplingParams(max_tokens=args.max_tokens, temperature=0))
        per_row.add(str(i), prompt, args.max_tokens)
    results = {
        "left-padded batch": run(EngineSteps(padded), lambda steps: steps.engine.num_running, prompts),
        "per-row caches": run(per_row, lambda engine: len(engine.running), prompts),
    }
    same = results["left-padded batch"]["outputs"] == results["per-row caches"]["outputs"]
    print(
        f"budget {args.budget} tokens, {args.requests} requests (1 in 4 of {args.long} prompt tokens, the rest "
        f"{args.short}), {args.max_tokens} new tokens each; outputs equal: {same}"
    )
    print("| layout | sequences held, mean | most | decode steps | output tokens/s | output tokens per CPU-second |")
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        print(
            f"| {name} | {result['held_mean']:.1f} | {result['held_max']} | {result['steps']} | "
            f"{result['tokens_per_s']:.0f} | {result['tokens_per_cpu_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
