"""C-RLFT data: conversation JSONL and clean JSON give the same tokens; weights reach exactly the supervised tokens."""

from __future__ import annotations

import json
import os
import shutil

from data_pipeline.filter_sharegpt import label_conditions
from ochat.config import get_model_config, load_tokenizer
from ochat.utils.files import write_jsonl_atomic
from tests.helpers.repo import EXAMPLES_DIR, run_data_pipeline, run_module

CRLFT_TYPE = "openchat_v3.2_tiny"


def _clean(conversation_id: str, model: str, answer: str) -> dict:
    return {
        "id": conversation_id,
        "model": model,
        "views": 1,
        "hash": conversation_id,
        "items": [
            {"from": "system", "value": "Be helpful."},
            {"from": "human", "value": f"Question {conversation_id}: what is a {answer}?"},
            {"from": "gpt", "value": f"A {answer} is a thing.\nThat is all."},
            {"from": "human", "value": "Thanks!"},
            {"from": "gpt", "value": "You are welcome."},
        ],
    }


CLEAN = [_clean("a", "Model: GPT-4", "cat"), _clean("b", "Model: GPT-4", "dog"), _clean("c", "Model: GPT-4", "owl")]


def _generate(model_type: str, model_dir: str, in_file, out_dir) -> tuple[list, dict]:
    run_module(
        "data_pipeline.generate_dataset",
        "--model_type",
        model_type,
        "--model_path",
        model_dir,
        "--in_file",
        str(in_file),
        "--out_dir",
        str(out_dir),
        "--eval_ratio",
        "0",
    )
    with open(os.path.join(out_dir, f"{model_type}.train.json"), encoding="utf-8") as handle:
        samples = json.load(handle)
    with open(os.path.join(out_dir, f"{model_type}.report.json"), encoding="utf-8") as handle:
        return samples, json.load(handle)


def test_both_input_formats_give_identical_tokens(tiny_crlft_model_dir, tmp_path):
    clean_file, jsonl_file = tmp_path / "clean.json", tmp_path / "conversations.jsonl"
    clean_file.write_text(json.dumps(CLEAN))
    write_jsonl_atomic(jsonl_file, label_conditions(CLEAN))  # GPT-4 pages: condition GPT4, reward 1.0
    from_clean, clean_report = _generate(CRLFT_TYPE, tiny_crlft_model_dir, clean_file, tmp_path / "from_clean")
    from_jsonl, jsonl_report = _generate(CRLFT_TYPE, tiny_crlft_model_dir, jsonl_file, tmp_path / "from_jsonl")
    assert len(from_clean) == 3 and from_clean == from_jsonl
    assert (clean_report["in_format"], jsonl_report["in_format"]) == ("sharegpt_json", "conversation_jsonl")
    tokenizer = load_tokenizer(get_model_config(CRLFT_TYPE), tiny_crlft_model_dir)
    text = tokenizer.decode(from_clean[0][0])
    assert "GPT4 System: Be helpful." in text and "GPT4 User:" in text and "GPT4 Assistant:" in text


def test_weights_land_on_exactly_the_supervised_tokens(tiny_crlft_model_dir, tmp_path):
    clean = [_clean("a", "Model: GPT-4", "cat"), _clean("b", "Model: Default (GPT-3.5)", "dog")]
    jsonl_file = tmp_path / "conversations.jsonl"
    write_jsonl_atomic(jsonl_file, label_conditions(clean))
    samples, report = _generate(CRLFT_TYPE, tiny_crlft_model_dir, jsonl_file, tmp_path / "out")
    assert report["conditions"] == {"GPT4": 1, "GPT3": 1}
    tokenizer = load_tokenizer(get_model_config(CRLFT_TYPE), tiny_crlft_model_dir)
    rewards = set()
    for token_ids, supervise_mask, weights in samples:
        assert len(weights) == len(token_ids)
        assert [weight > 0 for weight in weights] == supervise_mask
        supervised_text = tokenizer.decode([t for t, w in zip(token_ids, weights) if w > 0])
        assert "is a thing" in supervised_text and "welcome" in supervised_text and "Question" not in supervised_text
        rewards |= {weight for weight in weights if weight > 0}
        condition = "GPT3" if 0.1 in weights else "GPT4"
        assert f"{condition} Assistant:" in tokenizer.decode(token_ids)
    assert rewards == {1.0, 0.1}


def test_unconditioned_types_write_the_pair_and_report_the_ignored_conditions(tiny_model_dir, tmp_path):
    clean = [_clean("a", "Model: GPT-4", "cat"), _clean("b", "Model: GPT-4", "dog")]
    jsonl_file = tmp_path / "conversations.jsonl"
    records = label_conditions(clean)
    records[1]["condition"] = "GPT3"  # a condition alone (answers at 1.0) is ignored; weights are refused
    write_jsonl_atomic(jsonl_file, records)
    samples, report = _generate("openchat_tiny", tiny_model_dir, jsonl_file, tmp_path / "out")
    assert [len(sample) for sample in samples] == [2, 2]
    assert report["conditions"] == {"ignored (model type takes no condition)": {"GPT4": 1, "GPT3": 1}}


def test_conversation_jsonl_with_a_broken_item_is_counted_invalid(tiny_crlft_model_dir, tmp_path):
    jsonl_file = tmp_path / "conversations.jsonl"
    good = label_conditions(CLEAN[:1])[0]
    broken = {"items": [{"role": "robot", "content": "beep", "weight": 0.0}], "condition": "GPT4", "system": ""}
    negative = {**good, "items": [good["items"][0], {**good["items"][1], "weight": -1.0}]}
    write_jsonl_atomic(jsonl_file, [good, broken, negative])
    samples, report = _generate(CRLFT_TYPE, tiny_crlft_model_dir, jsonl_file, tmp_path / "out")
    assert len(samples) == 1 and report["train"]["invalid"] == ["line 2", "a"]


def test_pipeline_script_runs_the_whole_crlft_data_path(tiny_crlft_model_dir, tmp_path):
    pages = tmp_path / "in" / "ShareGPT"
    pages.mkdir(parents=True)
    for name in sorted(os.listdir(os.path.join(EXAMPLES_DIR, "ShareGPT")))[:40]:
        shutil.copy(os.path.join(EXAMPLES_DIR, "ShareGPT", name), pages)
    out = tmp_path / "out"
    result = run_data_pipeline(
        str(tmp_path / "in"),
        str(out),
        {
            "FILTER_ARGS": "--mode c-rlft",
            "MODEL_TYPES": CRLFT_TYPE,
            "MODEL_PATHS": tiny_crlft_model_dir,
            "GENERATE_ARGS": "--eval_ratio 0",
        },
    )
    assert "condition GPT4" in result.stdout and "condition GPT3" in result.stdout
    conditions = [json.loads(line)["condition"] for line in (out / "sharegpt_crlft.jsonl").read_text().splitlines()]
    assert {"GPT4", "GPT3"} <= set(conditions)
    samples = json.loads((out / f"{CRLFT_TYPE}.train.json").read_text())
    assert all(len(sample) == 3 for sample in samples)
    assert {weight for sample in samples for weight in sample[2] if weight > 0} == {1.0, 0.1}
    assert not (out / "sharegpt_gpt4.json").exists()
