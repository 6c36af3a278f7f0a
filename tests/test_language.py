"""Language identification on a hand-written labelled set, code looked past, language codes validated."""

import pytest

from data_pipeline.examples.language_samples import CODE_BLOCK, SENTENCES, labelled_conversations
from data_pipeline.language import UNDETERMINED, dominant_language, parse_languages, prose_text


def test_labelled_conversations_in_twelve_languages_are_identified():
    samples = labelled_conversations(seed=0, per_language=5)
    wrong = [
        (language, dominant_language(items)) for language, items in samples if dominant_language(items) != language
    ]
    assert len({language for language, _ in samples}) == 12
    assert not wrong


def test_code_blocks_do_not_make_a_chinese_conversation_english():
    items = [
        {"from": "human", "value": SENTENCES["zh"][0]},
        {"from": "gpt", "value": SENTENCES["zh"][1] + "\n\n" + CODE_BLOCK * 6 + " `items[::-1]` http://x.org/a"},
    ]
    assert dominant_language(items) == "zh"
    assert "def reverse_items" not in prose_text(items) and "http" not in prose_text(items)


def test_a_conversation_of_code_only_is_undetermined():
    assert (
        dominant_language([{"from": "human", "value": CODE_BLOCK}, {"from": "gpt", "value": "`x = 1`"}]) == UNDETERMINED
    )


def test_the_longer_language_dominates_a_mixed_conversation():
    items = [{"from": "human", "value": SENTENCES["de"][0]}, {"from": "gpt", "value": " ".join(SENTENCES["en"])}]
    assert dominant_language(items) == "en"


def test_language_codes_are_parsed_and_unknown_ones_refused():
    assert parse_languages(" en, ZH ,en") == ("en", "zh")
    with pytest.raises(ValueError, match="unknown language code.*klingon"):
        parse_languages("en,klingon")
    with pytest.raises(ValueError, match="at least one"):
        parse_languages(" , ")


def test_clean_sharegpt_keeps_listed_languages_and_counts_every_language(tmp_path):
    import json

    from tests.helpers.repo import run_module

    samples = labelled_conversations(seed=1, per_language=2)
    records = [
        {"id": f"{language}{number}", "conversations": items} for number, (language, items) in enumerate(samples)
    ]
    (tmp_path / "dump.json").write_text(json.dumps(records, ensure_ascii=False))
    out = tmp_path / "clean.json"
    result = run_module(
        "data_pipeline.clean_sharegpt",
        "--in_file",
        str(tmp_path / "dump.json"),
        "--out_file",
        str(out),
        "--languages",
        "en,zh",
    )
    kept = json.loads(out.read_text())
    report = json.loads((tmp_path / "clean.report.json").read_text())
    assert sorted(c["id"][:2] for c in kept) == ["en", "en", "zh", "zh"]
    assert report["languages"] == {language: 2 for language in SENTENCES} and report["languages_kept"] == ["en", "zh"]
    assert report["dropped"] == {f"language:{language}": 2 for language in SENTENCES if language not in ("en", "zh")}
    assert "languages" in result.stdout


def test_clean_sharegpt_refuses_an_unknown_language_code_in_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_pipeline.clean_sharegpt",
            "--in_dir",
            str(tmp_path),
            "--out_file",
            str(tmp_path / "o.json"),
            "--languages",
            "en,xx",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "unknown language code(s) xx" in result.stderr
