"""Clean and convert throughput on a generated ShareGPT corpus, against the original's approach.

In one run, on the same >= 10,000 generated pages:

- clean, ours: `data_pipeline.clean_sharegpt.clean_pages` over a process pool
  (and the same per-page function over Ray tasks, to compare the two backends);
- clean, reference: a plain single-process implementation of the same rules
  that parses every whole page with BeautifulSoup's `html.parser` to find
  `__NEXT_DATA__` and runs markdownify on the raw answer HTML;
- convert, ours: `data_pipeline.tokenized_samples.convert_conversations`
  (every turn's text in one batched fast-tokenizer call, registry template, turn-wise fitting);
- convert, reference: transformers' `apply_chat_template` with the exported template, one call per
  conversation (the ids every other engine feeds the model).

Kept conversations (and the drop reasons of every page) must be identical
between the two cleaners, and every conversation's ids identical between the
two converters; the script exits non-zero otherwise.

    python benchmarks/data_pipeline_throughput.py --num-pages 10000 --workers 2
"""

import hashlib
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

from bs4 import BeautifulSoup
from markdownify import markdownify
from tqdm import tqdm

from data_pipeline.clean_sharegpt import clean_pages
from data_pipeline.examples.make_examples import generate_corpus
from data_pipeline.filter_sharegpt import filter_by_model
from ochat.models.tiny_chat_model import prepare_tiny_chat_model
from ochat.utils.cli import ArgumentParser

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK_DIR = REPO_ROOT / "benchmarks" / "_work" / "data_pipeline"
MODEL_TYPE = "openchat_tiny"


def main():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_pages", type=int, default=10_000, help="pages in the generated corpus")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for our cleaner")
    parser.add_argument("--work_dir", type=Path, default=DEFAULT_WORK_DIR, help="corpus and tiny model go here")
    parser.add_argument(
        "--model_path", default=None, help="tokenizer folder with <|end_of_turn|> (default: build the tiny one)"
    )
    parser.add_argument("--model_type", default=MODEL_TYPE, help="registry model type for convert")
    parser.add_argument("--no_ray", action="store_true", help="skip the Ray backend comparison")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    page_paths = prepare_corpus(args.work_dir / "ShareGPT", args.num_pages)
    model_path = args.model_path or prepare_tiny_model(args.work_dir)
    rows, failures = [], []

    # ------------------------------------------------------------------ clean
    with Timer() as reference_timer:
        reference_conversations, reference_reasons = reference_clean(page_paths)
    with Timer() as pool_timer:
        conversations, report = clean_pages(page_paths, num_workers=args.workers)
    reasons = reasons_by_file(report)

    if conversations != reference_conversations:
        failures.append("clean: kept conversations differ from the reference")
    if reasons != reference_reasons:
        failures.append("clean: drop/duplicate reasons differ from the reference")

    with Timer() as single_timer:
        single_conversations, _ = clean_pages(page_paths, num_workers=1)
    if single_conversations != conversations:
        failures.append("clean: 1-process output differs from the pool's")

    pages = len(page_paths)
    reference_clean_s, clean_s = reference_timer.wall, pool_timer.wall
    rows.append(row("clean", "reference: 1 process, bs4 html.parser", pages, reference_timer, reference_timer))
    rows.append(row("clean", "ours: 1 process", pages, single_timer, reference_timer))
    rows.append(row("clean", f"ours: process pool x{args.workers}", pages, pool_timer, reference_timer))
    if not args.no_ray:
        ray_timer, ray_init_s, ray_conversations = ray_clean(page_paths, args.workers)
        if ray_conversations != conversations:
            failures.append("clean: Ray backend output differs")
        ray_timer.cpu = None
        rows.append(
            row(
                "clean", f"ours: Ray x{args.workers} (incl. {ray_init_s:.1f} s init)", pages, ray_timer, reference_timer
            )
        )

    # ------------------------------------------------------------------ convert
    gpt4_conversations = filter_by_model(conversations)
    convert_rows, convert_failures = compare_convert(args.model_type, model_path, gpt4_conversations)
    rows += convert_rows
    failures += convert_failures

    print()
    print(
        f"corpus: {pages} pages, {len(conversations)} kept, {report['duplicates']} duplicates, "
        f"{sum(report['dropped'].values())} dropped; {len(gpt4_conversations)} GPT-4 conversations converted "
        f"({args.model_type}, context {max_context(args.model_type)}); cores: {os.cpu_count()}, "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print_table(rows)
    convert_seconds = {name: seconds for stage, name, _, seconds, *_ in rows if stage == "convert"}
    if REFERENCE_CONVERT in convert_seconds and OURS_CONVERT in convert_seconds:
        total_reference = reference_clean_s + convert_seconds[REFERENCE_CONVERT]
        total_ours = clean_s + convert_seconds[OURS_CONVERT]
        print(
            f"\nclean + convert: reference {total_reference:.1f} s, ours {total_ours:.1f} s "
            f"-> {total_reference / total_ours:.1f}x"
        )
    print("outputs identical: " + ("yes" if not failures else "NO\n  " + "\n  ".join(failures)))
    sys.exit(1 if failures else 0)


# ----------------------------------------------------------------------------- timing


class Timer:
    """Wall seconds and CPU seconds (this process plus reaped worker processes) of a block.

    The CPU figure stays meaningful when other jobs share the cores; it does
    not include Ray workers, which are not our children.
    """

    def __enter__(self):
        self.wall_start, self.cpu_start = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc_info):
        self.wall = time.perf_counter() - self.wall_start
        self.cpu = cpu_seconds() - self.cpu_start


def cpu_seconds():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# ----------------------------------------------------------------------------- inputs


def prepare_corpus(corpus_dir, num_pages):
    """Generate the corpus once per size; reuse it on later runs."""
    marker = corpus_dir / ".num_pages"
    if not (marker.exists() and marker.read_text() == str(num_pages)):
        if corpus_dir.exists():
            for old in corpus_dir.glob("*.html"):
                old.unlink()
        print(f"generating {num_pages} pages in {corpus_dir} ...", flush=True)
        generate_corpus(corpus_dir, num_pages=num_pages, seed=1, show_progress=True)
        marker.write_text(str(num_pages))
    return sorted(corpus_dir.glob("*.html"), key=lambda path: path.name)


def prepare_tiny_model(work_dir):
    return prepare_tiny_chat_model(MODEL_TYPE, str(work_dir / "tiny"))[1]


def max_context(model_type):
    from ochat.config import get_model_config

    return get_model_config(model_type).max_context


# ----------------------------------------------------------------------------- reference cleaner


def reference_clean(page_paths, blocked_words=("openai",)):
    """The original's way, written plainly: one process, whole-page BeautifulSoup parse, markdownify per answer."""
    conversations, reasons, seen = [], {}, {}
    for path in tqdm(page_paths, desc="reference clean", unit="page"):
        conversation, reason = reference_clean_page(path.read_bytes(), blocked_words)
        if conversation is None:
            reasons[path.name] = reason
            continue
        if conversation["hash"] in seen:
            reasons[path.name] = "duplicate"
            continue
        seen[conversation["hash"]] = path.name
        if conversation["id"] is None:
            conversation["id"] = path.stem
        conversations.append(conversation)
    return conversations, reasons


def reference_clean_page(page_bytes, blocked_words):
    try:
        text = page_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return None, "undecodable_bytes"
    script = BeautifulSoup(text, "html.parser").find("script", id="__NEXT_DATA__")
    if script is None:
        return None, "no_next_data"
    try:
        data = json.loads(script.string or "")
    except json.JSONDecodeError:
        return None, "invalid_json"
    props = data.get("props", {}).get("pageProps") if isinstance(data, dict) else None
    content = props.get("content") if isinstance(props, dict) else None
    if not isinstance(content, dict) or "items" not in content:
        return None, "no_content"
    items = content["items"]
    if not isinstance(items, list) or any(
        not isinstance(item, dict) or not isinstance(item.get("from"), str) or not isinstance(item.get("value"), str)
        for item in items
    ):
        return None, "invalid_items"

    if items and items[0]["from"] != "human":
        items = items[1:]
    if items and items[-1]["from"] == "human":
        items = items[:-1]
    if len(items) < 2:
        return None, "too_few_turns"
    for index, item in enumerate(items):
        if item["from"] != ["human", "gpt"][index % 2]:
            return None, "roles_not_alternating"

    cleaned = []
    for item in items:
        value = item["value"]
        if item["from"] == "gpt":
            value = markdownify(
                value,
                strip=["div", "span"],
                heading_style="ATX",
                bullets="-",
                escape_underscores=False,
                escape_asterisks=False,
            )
        value = re.sub(r"^\s*\d+ / \d+", "", value, count=1)
        value = re.sub(r"Copy\d+ chars / \d+ words", "", value)
        value = re.sub(r"\n*```\n[^\n`]*Copy code\s*```\n*", "\n\n", value)
        value = re.sub(r"```\n([^\n`]*?)Copy code", lambda m: "```" + m.group(1).strip() + "\n", value)
        pieces = re.split(r"(```.*?```)", value, flags=re.S)
        for index in range(0, len(pieces), 2):
            pieces[index] = re.sub(r"\n(?:[ \t]*\n){2,}", "\n\n", pieces[index])
        value = "".join(pieces).strip()
        if not value:
            return None, "empty_turn"
        if any(word.lower() in value.lower() for word in blocked_words):
            return None, "blocked_word"
        cleaned.append({"from": item["from"], "value": value})

    model = content.get("model")
    digest = hashlib.sha256(
        json.dumps(
            [[item["from"], item["value"]] for item in cleaned], ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
    ).hexdigest()
    return {
        "id": props.get("id"),
        "model": model if isinstance(model, str) else None,
        "views": props.get("views"),
        "items": cleaned,
        "hash": digest,
    }, None


def reasons_by_file(report):
    return {entry["file"]: entry["reason"] for entry in report["files"] if entry["status"] in ("dropped", "duplicate")}


# ----------------------------------------------------------------------------- Ray backend


def ray_clean(page_paths, workers):
    """`clean_pages` on Ray tasks (`--ray_address local`'s private cluster), results gathered in order."""
    import ray

    from data_pipeline.ray_backend import connect

    with Timer() as timer:
        started = time.perf_counter()
        ray.shutdown()
        connect("local", num_cpus=workers)
        init_s = time.perf_counter() - started
        conversations, _ = clean_pages(page_paths, num_workers=workers, ray=True)
    ray.shutdown()
    return timer, init_s, conversations


# ----------------------------------------------------------------------------- convert

REFERENCE_CONVERT = "reference: apply_chat_template per conversation"
OURS_CONVERT = "ours: generate_dataset.convert_conversations"


def compare_convert(model_type, model_path, conversations):
    """Time our batched convert against transformers' `apply_chat_template`, one conversation a call.

    The exported template is the definition of the ids (other engines render it), so every
    conversation's ids, before fitting to the context, must equal the template's.
    """
    from data_pipeline.tokenized_samples import ConversionStats, convert_conversations
    from ochat.config import get_model_config, load_tokenizer, render_conversations

    config = get_model_config(model_type)
    tokenizer = load_tokenizer(config, model_path)
    hf_tokenizer = tokenizer.hf_tokenizer
    roles = {"system": "system", "human": "user", "gpt": "assistant"}

    reference_timer = Timer().__enter__()
    reference_ids = []
    for conversation in conversations:
        messages = [{"role": roles[item["from"]], "content": item["value"]} for item in conversation["items"]]
        text = hf_tokenizer.apply_chat_template(messages, tokenize=False)
        reference_ids.append(hf_tokenizer(text, add_special_tokens=False)["input_ids"])
    reference_timer.__exit__()

    with Timer() as ours_timer:
        samples = convert_conversations(config, tokenizer, conversations, stats=ConversionStats())

    failures = []
    rendered = render_conversations(config, tokenizer, [conversation["items"] for conversation in conversations])
    if [sample.token_ids for sample in rendered] != reference_ids:
        failures.append("convert: ids differ from apply_chat_template with the exported template")
    tokens = sum(len(sample.token_ids) for sample in samples)
    count = len(conversations)
    return [
        row("convert", REFERENCE_CONVERT, count, reference_timer, reference_timer, tokens),
        row("convert", OURS_CONVERT, count, ours_timer, reference_timer, tokens),
    ], failures


# ----------------------------------------------------------------------------- table


def row(stage, name, count, timer, reference_timer, tokens=None):
    """(stage, name, items, wall s, cpu s, tokens/s, wall speed-up, cpu speed-up) for the table."""
    cpu_speedup = reference_timer.cpu / timer.cpu if timer.cpu else None
    return (
        stage,
        name,
        count,
        timer.wall,
        timer.cpu,
        tokens / timer.wall if tokens else None,
        reference_timer.wall / timer.wall,
        cpu_speedup,
    )


def print_table(rows):
    header = (
        f"{'stage':<8} {'implementation':<46} {'items':>6} {'wall s':>7} {'cpu s':>7} {'items/s':>8} "
        f"{'tokens/s':>10} {'speed-up':>8} {'cpu speed-up':>12}"
    )
    print(header)
    print("-" * len(header))
    for stage, name, count, wall, cpu, tokens_per_s, speedup, cpu_speedup in rows:
        print(
            f"{stage:<8} {name:<46} {count:>6} {wall:>7.2f} {format_number(cpu, '.2f'):>7} {count / wall:>8.1f} "
            f"{format_number(tokens_per_s, ',.0f'):>10} {speedup:>7.1f}x {format_number(cpu_speedup, '.1f', 'x'):>12}"
        )


def format_number(value, spec, suffix=""):
    return "-" if value is None else format(value, spec) + suffix


if __name__ == "__main__":
    main()
