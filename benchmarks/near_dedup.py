"""Near-duplicate detection: recall and precision on planted edits, and time per 100k conversations.

A generated set of conversations (words drawn from a Zipf-like vocabulary, so unrelated
conversations share common words and short phrases, as real chats do) gets planted
near-duplicates of three kinds: one word changed, a turn appended, whitespace changed.
It also gets "same question" hard negatives: the first turn copied, the rest rewritten,
which must be kept. Every conversation then goes through `NearDuplicateIndex` in order,
as `clean_sharegpt --near_dup_threshold` does; a planted copy counts as found when it is
dropped and names its original. Times are CPU seconds of this process (robust on a shared
machine). Signatures are timed apart from the index (workers
compute them in parallel in `clean_sharegpt`; the index is sequential), and both are
extrapolated linearly to 100k conversations (LSH lookups are constant-time per item).

    python benchmarks/near_dedup.py --conversations 10000 --threshold 0.8
"""

from __future__ import annotations

import random
import time

from data_pipeline.near_dedup import NearDuplicateIndex, conversation_signature, shingles
from ochat.utils.cli import ArgumentParser

EDITS = ("word_changed", "turn_appended", "whitespace")


def main():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000, help="originals in the set")
    parser.add_argument("--planted", type=float, default=0.1, help="fraction of originals given a planted copy")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    vocabulary = [f"w{index}" for index in range(20_000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    corpus = []  # (key, items, original key or None, kind)
    for number in range(args.conversations):
        corpus.append((f"c{number}", conversation(rng, vocabulary, weights), None, "original"))
    originals = list(corpus)
    for key, items, _, _ in rng.sample(originals, int(args.planted * len(originals))):
        kind = rng.choice(EDITS + ("same_question",))
        edited = plant(kind, items, rng, vocabulary, weights)
        corpus.append((f"{kind}-{key}", edited, key if kind != "same_question" else None, kind))
    order = corpus[len(originals) :]
    rng.shuffle(order)
    corpus = originals + order  # copies come after their originals, as in a scrape

    started = time.process_time()
    signatures = [conversation_signature(items) for _, items, _, _ in corpus]
    signature_s = time.process_time() - started
    index = NearDuplicateIndex(args.threshold)
    started = time.process_time()
    verdicts = [index.add_unless_near_duplicate(key, signature) for (key, *_), signature in zip(corpus, signatures)]
    index_s = time.process_time() - started

    # Ground truth: the exact Jaccard similarity of shingle sets. A planted copy "should" be dropped
    # when it reaches the threshold; a drop is right when the named conversation truly reaches it.
    items_by_key = {key: items for key, items, _, _ in corpus}

    def true_jaccard(key_a, key_b):
        a, b = shingles(items_by_key[key_a]), shingles(items_by_key[key_b])
        return len(a & b) / len(a | b)

    rows = []
    for kind in EDITS + ("same_question", "original"):
        members = [(entry, verdict) for entry, verdict in zip(corpus, verdicts) if entry[3] == kind]
        if kind in EDITS:
            found = sum(verdict == entry[2] for entry, verdict in members)
            above = [
                (entry, verdict) for entry, verdict in members if true_jaccard(entry[0], entry[2]) >= args.threshold
            ]
            found_above = sum(verdict == entry[2] for entry, verdict in above)
            rows.append(
                (
                    kind,
                    len(members),
                    f"found {found / len(members):.3f} of all; "
                    f"{len(above)} truly >= threshold, recall {found_above / max(1, len(above)):.3f}",
                )
            )
        else:
            wrongly = sum(verdict is not None for _, verdict in members)
            rows.append((kind, len(members), f"dropped {wrongly}"))
    dropped = [(entry, verdict) for entry, verdict in zip(corpus, verdicts) if verdict is not None]
    true_drops = sum(true_jaccard(entry[0], verdict) >= args.threshold for entry, verdict in dropped)
    should_drop = sum(entry[3] in EDITS and true_jaccard(entry[0], entry[2]) >= args.threshold for entry in corpus)
    found_should = sum(
        entry[3] in EDITS and verdict == entry[2] and true_jaccard(entry[0], entry[2]) >= args.threshold
        for entry, verdict in zip(corpus, verdicts)
    )
    words = sum(len(" ".join(item["value"] for item in items).split()) for _, items, _, _ in corpus) / len(corpus)

    planted = sum(entry[3] in EDITS for entry in corpus)
    print(
        f"{len(corpus)} conversations ({args.conversations} originals, {planted} planted near-duplicates, "
        f"mean {words:.0f} words), threshold {args.threshold}, 128 permutations"
    )
    print(f"{'kind':<16}{'count':>8}  result")
    for kind, count, result in rows:
        print(f"{kind:<16}{count:>8}  {result}")
    print(
        f"drops {len(dropped)}: precision {true_drops / max(1, len(dropped)):.3f} (named match truly >= threshold); "
        f"recall {found_should / max(1, should_drop):.3f} (of {should_drop} planted copies truly >= threshold)"
    )
    per_100k = 100_000 / len(corpus)
    print(f"{'stage':<28}{'CPU s':>10}{'per 100k (extrapolated)':>26}")
    print(f"{'signatures (1 core)':<28}{signature_s:>10.2f}{signature_s * per_100k:>24.1f} s")
    print(f"{'LSH index, sequential':<28}{index_s:>10.2f}{index_s * per_100k:>24.1f} s")


def conversation(rng, vocabulary, weights):
    turns = rng.choice((2, 2, 4, 6))
    return [
        {
            "from": "human" if turn % 2 == 0 else "gpt",
            "value": " ".join(
                rng.choices(vocabulary, weights, k=rng.randint(10, 40) if turn % 2 == 0 else rng.randint(60, 250))
            ),
        }
        for turn in range(turns)
    ]


def plant(kind, items, rng, vocabulary, weights):
    items = [dict(item) for item in items]
    if kind == "word_changed":
        turn = rng.randrange(len(items))
        words = items[turn]["value"].split()
        words[rng.randrange(len(words))] = rng.choice(vocabulary)
        items[turn]["value"] = " ".join(words)
    elif kind == "turn_appended":
        items += [
            {"from": "human", "value": " ".join(rng.choices(vocabulary, weights, k=15))},
            {"from": "gpt", "value": " ".join(rng.choices(vocabulary, weights, k=40))},
        ]
    elif kind == "whitespace":
        items = [
            {**item, "value": "\n " + item["value"].replace(" ", "  ", 5).replace(" ", "\n", 2) + " \t"}
            for item in items
        ]
    else:  # same question, new answers: not a near-duplicate
        items = items[:1] + conversation(rng, vocabulary, weights)[1:]
        if len(items) < 2:
            items.append({"from": "gpt", "value": " ".join(rng.choices(vocabulary, weights, k=120))})
    return items


if __name__ == "__main__":
    main()
