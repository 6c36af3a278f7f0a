"""Language identification on a hand-written labelled set, code looked past, language codes validated."""

import pytest

from data_pipeline.language import UNDETERMINED, dominant_language, parse_languages, prose_text
from tests.language_samples import CODE_BLOCK, SENTENCES, labelled_conversations


def test_labelled_conversations_in_twelve_languages_are_identified():
    samples = labelled_conversations(seed=0, per_language=5)
    wrong = [(language, dominant_language(items)) for language, items in samples
             if dominant_language(items) != language]
    assert len({language for language, _ in samples}) == 12
    assert not wrong


def test_code_blocks_do_not_make_a_chinese_conversation_english():
    items = [{"from": "human", "value": SENTENCES["zh"][0]},
             {"from": "gpt", "value": SENTENCES["zh"][1] + "\n\n" + CODE_BLOCK * 6 + " `items[::-1]` http://x.org/a"}]
    assert dominant_language(items) == "zh"
    assert "def reverse_items" not in prose_text(items) and "http" not in prose_text(items)


def test_a_conversation_of_code_only_is_undetermined():
    assert dominant_language([{"from": "human", "value": CODE_BLOCK}, {"from": "gpt", "value": "`x = 1`"}]) \
        == UNDETERMINED


def test_the_longer_language_dominates_a_mixed_conversation():
    items = [{"from": "human", "value": SENTENCES["de"][0]},
             {"from": "gpt", "value": " ".join(SENTENCES["en"])}]
    assert dominant_language(items) == "en"


def test_language_codes_are_parsed_and_unknown_ones_refused():
    assert parse_languages(" en, ZH ,en") == ("en", "zh")
    with pytest.raises(ValueError, match="unknown language code.*klingon"):
        parse_languages("en,klingon")
    with pytest.raises(ValueError, match="at least one"):
        parse_languages(" , ")
