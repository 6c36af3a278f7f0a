"""Base-model tools: tiny twins, the EOT token's initialisation, context extension."""

from __future__ import annotations

import filecmp
import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ochat.config import get_model_config, load_tokenizer
from ochat.models import load_model
from tests.helpers.repo import run_module


def _config_json(path: str) -> dict:
    with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
        return json.load(handle)


def test_build_tiny_is_deterministic_given_a_seed(tiny_base_dir, tmp_path):
    again = str(tmp_path / "again")
    run_module("ochat.models.build_tiny", "--model_type", "openchat_tiny", "--out", again)
    for name in ("model.safetensors", "tokenizer.model", "tokenizer.json"):
        assert filecmp.cmp(os.path.join(tiny_base_dir, name), os.path.join(again, name), shallow=False), name


def test_tiny_base_is_a_plain_llama_without_eot(tiny_base_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_base_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    assert model.config.model_type == "llama"
    assert tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["<unk>", "<s>", "</s>"]
    assert "<|end_of_turn|>" not in tokenizer.get_vocab()
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)


def test_build_tiny_refuses_full_size_types(tmp_path):
    from ochat.models.build_tiny import build_tiny

    with pytest.raises(ValueError, match="openchat_tiny"):
        build_tiny("openchat", str(tmp_path / "x"))


def test_eot_rows_are_the_mean_of_existing_rows_for_llama(tiny_base_dir, tiny_model_dir):
    base = AutoModelForCausalLM.from_pretrained(tiny_base_dir)
    extended = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = load_tokenizer(get_model_config("openchat_tiny"), tiny_model_dir)
    eot = tokenizer.eot_token_id
    assert eot == base.get_input_embeddings().weight.shape[0]
    for base_weight, new_weight in (
        (base.get_input_embeddings().weight, extended.get_input_embeddings().weight),
        (base.get_output_embeddings().weight, extended.get_output_embeddings().weight),
    ):
        assert torch.equal(new_weight[:eot], base_weight)
        assert torch.allclose(new_weight[eot], base_weight.mean(dim=0), atol=1e-6)


def test_tied_embeddings_gain_one_mean_row_and_stay_tied(tiny_base_dir, tmp_path):
    """SmolLM2-style checkpoints share input embeddings and LM head: EOT adds one row to the one matrix."""
    base = AutoModelForCausalLM.from_pretrained(tiny_base_dir)
    base.config.tie_word_embeddings = True
    base.lm_head.weight = base.get_input_embeddings().weight
    tied_dir, out_dir = str(tmp_path / "tied"), str(tmp_path / "tied_eot")
    base.save_pretrained(tied_dir)
    AutoTokenizer.from_pretrained(tiny_base_dir).save_pretrained(tied_dir)
    run_module("ochat.models.add_eot_token", "--model_type", "openchat_tiny", "--in", tied_dir, "--out", out_dir)
    extended = AutoModelForCausalLM.from_pretrained(out_dir)
    rows = base.get_input_embeddings().weight.shape[0]
    embeddings = extended.get_input_embeddings().weight
    assert embeddings.shape[0] == rows + 1 and extended.config.tie_word_embeddings
    assert extended.get_output_embeddings().weight.data_ptr() == embeddings.data_ptr()
    assert torch.allclose(embeddings[rows], base.get_input_embeddings().weight.mean(dim=0), atol=1e-6)


def test_output_files_honour_the_umask(tmp_path):
    from ochat.utils.files import write_json_atomic

    previous = os.umask(0o027)
    try:
        write_json_atomic(tmp_path / "shared.json", {"a": 1})
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "shared.json").st_mode & 0o777 == 0o640


def test_eot_token_is_the_eos_of_the_saved_generation_config(tiny_model_dir):
    tokenizer = load_tokenizer(get_model_config("openchat_tiny"), tiny_model_dir)
    with open(os.path.join(tiny_model_dir, "generation_config.json"), encoding="utf-8") as handle:
        generation = json.load(handle)
    assert generation["eos_token_id"][0] == tokenizer.eot_token_id
    assert tokenizer.hf_tokenizer.convert_tokens_to_ids("</s>") in generation["eos_token_id"]


def test_adding_eot_twice_is_refused(tiny_model_dir, tmp_path):
    from ochat.models.add_eot_token import add_eot_token

    with pytest.raises(ValueError, match="already has"):
        add_eot_token("openchat_tiny", tiny_model_dir, str(tmp_path / "twice"))


def test_starcoder_eot_rows_are_drawn_from_normal_0_02(tmp_path):
    base, extended = str(tmp_path / "coder_base"), str(tmp_path / "coder_eot")
    run_module("ochat.models.build_tiny", "--model_type", "opencoder_tiny", "--out", base)
    run_module("ochat.models.add_eot_token", "--model_type", "opencoder_tiny", "--in", base, "--out", extended)
    model = AutoModelForCausalLM.from_pretrained(extended)
    assert model.config.model_type == "gpt_bigcode"
    weight = model.get_input_embeddings().weight.detach()
    new_row = weight[-1]
    assert 0.012 < new_row.std().item() < 0.03
    assert abs(new_row.mean().item()) < 0.01
    assert not torch.allclose(new_row, weight[:-1].mean(dim=0), atol=1e-3)


def test_openchat_8192_extends_rope_context_by_extrapolation(tiny_base_dir, tmp_path):
    out = str(tmp_path / "eot_8192")
    run_module("ochat.models.add_eot_token", "--model_type", "openchat_8192_tiny", "--in", tiny_base_dir, "--out", out)
    base_config, extended_config = _config_json(tiny_base_dir), _config_json(out)
    assert base_config["max_position_embeddings"] == 2048
    assert extended_config["max_position_embeddings"] == 8192
    assert extended_config["rope_parameters"] == base_config["rope_parameters"]  # same base frequency

    base = load_model(get_model_config("openchat_tiny"), tiny_base_dir).eval()
    extended = load_model(get_model_config("openchat_8192_tiny"), out).eval()
    tokens = torch.randint(3, 100, (1, 64))
    with torch.no_grad():
        base_logits = base(tokens).logits
        extended_logits = extended(tokens).logits[..., : base_logits.shape[-1]]
        assert torch.allclose(base_logits, extended_logits, atol=1e-5)
        long_tokens = torch.randint(3, 100, (1, 3000))
        assert extended(long_tokens).logits.shape[1] == 3000


@pytest.mark.parametrize("scaling", ["linear", "dynamic", "yarn"])
def test_rope_scaling_options_go_through_transformers_rope_config(tiny_base_dir, scaling):
    model = load_model(get_model_config("openchat_8192_tiny"), tiny_base_dir, rope_scaling=scaling)
    rope = model.config.rope_parameters
    assert model.config.max_position_embeddings == 8192
    assert rope["rope_type"] == scaling and rope["factor"] == 4.0
    with torch.no_grad():
        assert torch.isfinite(model(torch.randint(3, 100, (1, 32))).logits).all()


def test_loading_the_wrong_architecture_is_a_clear_error(tiny_base_dir):
    with pytest.raises(ValueError, match="gpt_bigcode"):
        load_model(get_model_config("opencoder_tiny"), tiny_base_dir)


def test_build_tiny_trains_its_tokenizer_on_the_text_it_is_handed(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(f"zebra quokka number {i} walks past the axolotl" for i in range(300)), encoding="utf-8"
    )
    out = str(tmp_path / "own_corpus")
    run_module(
        "ochat.models.build_tiny",
        "--model_type",
        "openchat_tiny",
        "--out",
        out,
        "--corpus_text",
        str(corpus),
        "--vocab_size",
        "340",
    )
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == 340
    assert tokenizer.tokenize("quokka") == ["▁quokka"]  # a whole piece: learned from the given text


def test_build_tiny_reports_a_missing_corpus_in_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ochat.models.build_tiny", "--out", str(tmp_path / "x"), "--corpus_text", "nope.txt"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "nope.txt" in result.stderr and "Traceback" not in result.stderr


def test_openchat_3_5_tiny_is_a_mistral_twin_with_eot(tiny_base_dir, tmp_path):
    base, extended = str(tmp_path / "mistral_base"), str(tmp_path / "mistral_eot")
    run_module("ochat.models.build_tiny", "--model_type", "openchat_3.5_tiny", "--out", base)
    run_module("ochat.models.add_eot_token", "--model_type", "openchat_3.5_tiny", "--in", base, "--out", extended)
    assert filecmp.cmp(
        os.path.join(base, "tokenizer.model"), os.path.join(tiny_base_dir, "tokenizer.model"), shallow=False
    )  # same shipped corpus, same tokenizer
    config = get_model_config("openchat_3.5_tiny")
    model = load_model(config, extended).eval()
    assert model.config.model_type == "mistral" and model.config.max_position_embeddings == 8192
    tokenizer = load_tokenizer(config, extended)
    with torch.no_grad():
        logits = model(torch.tensor([[tokenizer.bos_token_id, 5, 6, tokenizer.eot_token_id]])).logits
    assert logits.shape == (1, 4, len(tokenizer)) and torch.isfinite(logits).all()
    assert "GPT4 Correct User:" in tokenizer.hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
