"""Conversion to tokenized samples: fitting to the context without corrupting the supervision."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from data_pipeline.generate_dataset import split_train_eval
from data_pipeline.tokenized_samples import ConversionStats, convert_conversations
from ochat.config import Sample, get_model_config, load_tokenizer, render_conversation
from tests.helpers.repo import REPO_ROOT

CONTEXT = 96


@pytest.fixture(scope="module")
def small_context(tiny_model_dir):
    """The tiny type with a 96-token context, so short crafted conversations overflow it."""
    config = dataclasses.replace(get_model_config("openchat_tiny"), max_context=CONTEXT)
    return config, load_tokenizer(config, tiny_model_dir)


def _round(question_words: int, answer_words: int, topic: str = "cat") -> list[dict]:
    return [
        {"from": "human", "value": " ".join([f"why {topic}"] * question_words)},
        {"from": "gpt", "value": " ".join([f"because {topic}"] * answer_words)},
    ]


def _conversation(*rounds) -> dict:
    return {"id": "c", "items": [item for round_items in rounds for item in round_items]}


def _assert_sane(samples, tokenizer, max_context=CONTEXT):
    for sample in samples:
        token_ids, supervise_mask = sample.token_ids, sample.supervise_mask
        assert len(token_ids) == len(supervise_mask) <= max_context
        assert any(supervise_mask)
        assert token_ids[-1] == tokenizer.eot_token_id and supervise_mask[-1]  # answer closed, no unsupervised tail
        assert token_ids[0] == tokenizer.bos_token_id


def test_cut_inside_an_assistant_turn_keeps_whole_turns_only(small_context):
    config, tokenizer = small_context
    conversation = _conversation(_round(3, 5), _round(3, 40, "dog"))
    full_ids = render_conversation(config, tokenizer, conversation["items"]).token_ids
    first_round_ids = render_conversation(config, tokenizer, conversation["items"][:2]).token_ids
    assert len(first_round_ids) < CONTEXT < len(full_ids)

    stats = ConversionStats()
    samples = convert_conversations(config, tokenizer, [conversation], stats=stats)
    assert [sample.token_ids for sample in samples] == [first_round_ids]
    _assert_sane(samples, tokenizer)
    assert stats.truncated == 1

    tail = convert_conversations(config, tokenizer, [conversation], truncation="tail")
    assert len(tail[0].token_ids) == CONTEXT and tail[0].token_ids[-1] != tokenizer.eot_token_id  # the original's cut


def test_first_exchange_longer_than_context_is_dropped_and_counted(small_context):
    config, tokenizer = small_context
    stats = ConversionStats()
    samples = convert_conversations(
        config, tokenizer, [_conversation(_round(80, 3)), _conversation(_round(2, 2))], stats=stats
    )
    assert len(samples) == 1
    assert stats.dropped_first_exchange_too_long == 1
    assert stats.conversations == 2 and stats.samples == 1


def test_tail_cut_never_keeps_a_sample_with_nothing_supervised(small_context):
    config, tokenizer = small_context
    stats = ConversionStats()
    samples = convert_conversations(config, tokenizer, [_conversation(_round(80, 3))], truncation="tail", stats=stats)
    assert samples == [] and stats.dropped_no_supervised_tokens == 1


def test_split_long_trains_on_every_round_and_accounts_for_tokens(small_context):
    config, tokenizer = small_context
    rounds = [_round(3, 12, topic) for topic in ("cat", "dog", "owl", "fox", "elk")]
    conversation = _conversation(*rounds)
    round_lengths = [len(render_conversation(config, tokenizer, r).token_ids) - 1 for r in rounds]  # minus BOS
    assert sum(round_lengths) + 1 > CONTEXT and max(round_lengths) + 1 <= CONTEXT

    split_stats, cut_stats = ConversionStats(), ConversionStats()
    split = convert_conversations(config, tokenizer, [conversation], split_long=True, stats=split_stats)
    cut = convert_conversations(config, tokenizer, [conversation], stats=cut_stats)
    _assert_sane(split, tokenizer)
    _assert_sane(cut, tokenizer)
    assert len(split) > 1 and len(cut) == 1
    assert split_stats.split_conversations == 1 and split_stats.split_samples == len(split)
    # every round is trained on exactly once; each extra sample costs one more BOS
    assert split_stats.supervised_kept == split_stats.supervised_total
    assert split_stats.tokens_kept == split_stats.tokens_total + len(split) - 1
    assert cut_stats.supervised_kept < cut_stats.supervised_total
    assert cut_stats.tokens_kept == len(cut[0].token_ids) and cut_stats.tokens_discarded > 0
    assert cut[0] == split[0]
    decoded = " ".join(tokenizer.decode(sample.token_ids) for sample in split)
    assert all(topic in decoded for topic in ("cat", "dog", "owl", "fox", "elk"))


def test_split_long_skips_a_single_round_too_long_but_keeps_the_rest(small_context):
    config, tokenizer = small_context
    conversation = _conversation(_round(2, 3), _round(90, 3, "dog"), _round(2, 3, "owl"))
    stats = ConversionStats()
    samples = convert_conversations(config, tokenizer, [conversation], split_long=True, stats=stats)
    _assert_sane(samples, tokenizer)
    assert stats.rounds_dropped_too_long == 1
    assert "owl" in tokenizer.decode(samples[-1].token_ids)


def test_malformed_conversations_are_reported_not_raised(small_context):
    config, tokenizer = small_context
    stats = ConversionStats()
    samples = convert_conversations(
        config,
        tokenizer,
        [{"id": "bad", "items": [{"from": "robot", "value": "x"}]}, _conversation(_round(1, 1))],
        stats=stats,
    )
    assert len(samples) == 1 and stats.invalid == ["bad"]


def test_train_eval_split_is_seeded_and_disjoint():
    conversations = [{"id": str(i)} for i in range(200)]
    train, evaluation = split_train_eval(conversations, 0.05, seed=3)
    again_train, again_eval = split_train_eval(conversations, 0.05, seed=3)
    assert (train, evaluation) == (again_train, again_eval)
    assert len(evaluation) == 10 and len(train) == 190
    assert not {c["id"] for c in train} & {c["id"] for c in evaluation}
    assert split_train_eval(conversations, 0.05, seed=4)[1] != evaluation


def test_bundled_corpus_converts_into_sane_files(tiny_data_dir, tiny_model_dir):
    config = get_model_config("openchat_tiny")
    tokenizer = load_tokenizer(config, tiny_model_dir)
    with open(os.path.join(tiny_data_dir, "openchat_tiny.report.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    with open(os.path.join(tiny_data_dir, "sharegpt_gpt4.json"), encoding="utf-8") as handle:
        conversation_count = len(json.load(handle))
    assert report["train"]["conversations"] + report["eval"]["conversations"] == conversation_count
    for split_name in ("train", "eval"):
        with open(os.path.join(tiny_data_dir, f"openchat_tiny.{split_name}.json"), encoding="utf-8") as handle:
            samples = json.load(handle)
        with open(os.path.join(tiny_data_dir, f"openchat_tiny.{split_name}.text.json"), encoding="utf-8") as handle:
            texts = json.load(handle)
        assert len(samples) == len(texts) == report[split_name]["samples"] > 0
        _assert_sane([Sample(*record) for record in samples], tokenizer, config.max_context)
        assert texts[0].startswith("<s>") and "<|end_of_turn|>" in texts[0]
    assert report["train"]["truncated"] > 0  # the corpus has conversations over the context


def test_model_without_eot_token_is_a_clear_error(tiny_base_dir, tiny_data_dir, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_pipeline.generate_dataset",
            "--model-type",
            "openchat_tiny",
            "--model-path",
            tiny_base_dir,
            "--in-file",
            os.path.join(tiny_data_dir, "sharegpt_gpt4.json"),
            "--out-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "add_eot_token" in result.stderr


def test_missing_input_is_a_clear_error(tiny_model_dir, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_pipeline.generate_dataset",
            "--model-type",
            "openchat_tiny",
            "--model-path",
            tiny_model_dir,
            "--in-file",
            str(tmp_path / "nope.json"),
            "--out-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "does not exist" in result.stderr


def test_run_data_pipeline_fails_loudly_on_a_missing_folder(tmp_path):
    result = subprocess.run(
        [os.path.join(REPO_ROOT, "run_data_pipeline.sh"), str(tmp_path / "missing"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "does not exist" in result.stderr


def test_run_data_pipeline_end_to_end_on_a_small_folder(tmp_path):
    import glob
    import shutil

    pages = sorted(glob.glob(os.path.join(REPO_ROOT, "data_pipeline", "examples", "ShareGPT", "*.html")))[:60]
    (tmp_path / "in" / "ShareGPT").mkdir(parents=True)
    for page in pages:
        shutil.copy(page, tmp_path / "in" / "ShareGPT")
    out = tmp_path / "out"
    result = subprocess.run(
        [os.path.join(REPO_ROOT, "run_data_pipeline.sh"), str(tmp_path / "in"), str(out)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHON=sys.executable, GENERATE_ARGS="--eval-ratio 0.1"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (
        "sharegpt_clean.json",
        "sharegpt_gpt4.json",
        "openchat_tiny.train.json",
        "openchat_tiny.eval.json",
        "openchat_tiny.train.text.json",
        "openchat_tiny.report.json",
        "models/openchat_tiny/eot/config.json",
    ):
        assert (out / name).exists(), name
