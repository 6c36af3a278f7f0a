"""Near-duplicate detection: planted edits are found, unrelated conversations are not, choices are deterministic."""

import random

import pytest

from data_pipeline.near_dedup import NearDuplicateIndex, conversation_signature, shingles

VOCABULARY = [f"w{index}" for index in range(3000)]


def conversation(rng, words=200, turns=4):
    per_turn = words // turns
    return [
        {"from": "human" if turn % 2 == 0 else "gpt", "value": " ".join(rng.choices(VOCABULARY, k=per_turn))}
        for turn in range(turns)
    ]


def word_changed(items, rng):
    items = [dict(item) for item in items]
    words = items[1]["value"].split()
    words[len(words) // 2] = "changed"
    items[1]["value"] = " ".join(words)
    return items


def turn_appended(items, rng):
    return items + [{"from": "human", "value": "thanks, and one more thing " + " ".join(rng.choices(VOCABULARY, k=5))}]


def whitespace_changed(items, rng):
    return [{**item, "value": "  " + item["value"].replace(" ", "\n\n", 3) + "\t"} for item in items]


def test_shingles_are_word_five_grams_that_ignore_whitespace_and_case():
    items = [{"from": "human", "value": "One two  three\nfour five six"}, {"from": "gpt", "value": "SEVEN"}]
    assert shingles(items) == {b"one two three four five", b"two three four five six", b"three four five six seven"}
    assert shingles([{"from": "human", "value": "too short"}]) == {b"too short"}


@pytest.mark.parametrize("edit", [word_changed, turn_appended, whitespace_changed])
def test_planted_edit_is_a_near_duplicate_of_the_original(edit):
    rng = random.Random(edit.__name__)
    index = NearDuplicateIndex(threshold=0.8)
    originals = [conversation(rng) for _ in range(30)]
    for number, items in enumerate(originals):
        assert index.add_unless_near_duplicate(f"c{number}", conversation_signature(items)) is None
    for number, items in enumerate(originals):
        assert (
            index.add_unless_near_duplicate(f"edit{number}", conversation_signature(edit(items, rng))) == f"c{number}"
        )


def test_unrelated_conversations_on_shared_vocabulary_are_all_kept():
    rng = random.Random(1)
    index = NearDuplicateIndex(threshold=0.8)
    kept = [
        index.add_unless_near_duplicate(number, conversation_signature(conversation(rng, words=80)))
        for number in range(300)
    ]
    assert kept == [None] * 300


def test_below_threshold_is_kept_and_the_earliest_kept_match_is_named():
    rng = random.Random(2)
    original = conversation(rng)
    half_rewritten = original[:2] + conversation(rng, words=100, turns=2)  # about a third of the shingles shared
    index = NearDuplicateIndex(threshold=0.8)
    assert index.add_unless_near_duplicate("first", conversation_signature(original)) is None
    assert index.add_unless_near_duplicate("rewrite", conversation_signature(half_rewritten)) is None
    assert index.add_unless_near_duplicate("copy", conversation_signature(whitespace_changed(original, rng))) == "first"


def test_signatures_are_deterministic_for_a_seed_and_differ_between_seeds():
    items = conversation(random.Random(3))
    assert (conversation_signature(items, seed=5) == conversation_signature(items, seed=5)).all()
    assert not (conversation_signature(items, seed=5) == conversation_signature(items, seed=6)).all()


def test_threshold_out_of_range_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        NearDuplicateIndex(threshold=1.5)


def test_clean_sharegpt_drops_near_duplicates_naming_the_kept_id_only_when_asked(tmp_path):
    import json

    from tests.helpers.repo import run_module

    rng = random.Random(4)
    originals = [conversation(rng) for _ in range(12)]
    records = [{"id": f"orig{number}", "conversations": items} for number, items in enumerate(originals)]
    records += [
        {"id": f"edit{number}", "conversations": word_changed(items, rng)} for number, items in enumerate(originals[:4])
    ]
    (tmp_path / "dump.json").write_text(json.dumps(records))

    def clean(*extra):
        out = tmp_path / f"clean{len(extra)}.json"
        run_module(
            "data_pipeline.clean_sharegpt", "--in_file", str(tmp_path / "dump.json"), "--out_file", str(out), *extra
        )
        return json.loads(out.read_text()), json.loads(out.with_name(out.stem + ".report.json").read_text())

    plain, _ = clean()
    assert len(plain) == 16  # off by default
    kept, report = clean("--near_dup_threshold", "0.8", "--num_workers", "2")
    assert [c["id"] for c in kept] == [f"orig{number}" for number in range(12)]
    near = [entry for entry in report["files"] if entry.get("reason") == "near_duplicate"]
    assert [(e["file"], e["near_duplicate_of"], e["near_duplicate_file"]) for e in near] == [
        (f"dump.json#{12 + number}", f"orig{number}", f"dump.json#{number}") for number in range(4)
    ]
    assert report["dropped"] == {"near_duplicate": 4} and report["near_dup_threshold"] == 0.8
