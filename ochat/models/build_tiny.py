"""Build a tiny, randomly initialised twin of a registry model that runs anywhere.

    python -m ochat.models.build_tiny --model_type openchat_tiny --out tiny_base
    python -m ochat.models.build_tiny --model_type openchat_tiny --out tiny_base --corpus_text my_text.txt

Trains a sentencepiece BPE tokenizer (byte fallback, LLaMA's `<unk> <s> </s>`
at ids 0, 1, 2, whitespace kept as is) on a plain-text corpus, then writes a
small `LlamaForCausalLM` (`MistralForCausalLM` for `openchat_3.5_tiny`,
`GPTBigCodeForCausalLM` for `opencoder_tiny`) with that vocabulary in Hugging
Face format. The default corpus, `tokenizer_corpus.txt` beside this module, is
the text of the bundled ShareGPT pages (written by
`data_pipeline.examples.make_tokenizer_corpus`). The folder has no
`<|end_of_turn|>` yet, exactly like a real base checkpoint: add it with
`ochat.models.add_eot_token`. Same seed and corpus give the same files.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from ochat.config import ModelConfig, get_model_config
from ochat.utils.cli import ArgumentParser

DEFAULT_CORPUS_TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer_corpus.txt")


def corpus_texts(corpus_text: str) -> list[str]:
    """The tokenizer-training text of a UTF-8 plain-text file (each line a sentence)."""
    if not os.path.isfile(corpus_text):
        raise FileNotFoundError(
            f"tokenizer corpus {corpus_text!r} is not a file; pass --corpus_text FILE of plain text"
        )
    with open(corpus_text, encoding="utf-8") as handle:
        text = handle.read()
    if not text.strip():
        raise ValueError(f"tokenizer corpus {corpus_text!r} holds no text")
    return [text]


def train_sentencepiece(texts: list[str], vocab_size: int, out_dir: str) -> str:
    """Train a LLaMA-style BPE sentencepiece model; returns the path of tokenizer.model."""
    import io

    import sentencepiece as spm

    # Lines are what sentencepiece counts as sentences; drop empty ones, keep order for determinism.
    sentences = [line for text in texts for line in text.split("\n") if line.strip()]
    # Written through a buffer: with a model_prefix the output folder's path would be stored in the model.
    model_bytes = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model_bytes,
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        character_coverage=0.9995,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        shuffle_input_sentence=False,
        num_threads=1,
        max_sentence_length=1 << 16,
        minloglevel=2,
    )
    model_path = os.path.join(out_dir, "tokenizer.model")
    with open(model_path, "wb") as handle:
        handle.write(model_bytes.getvalue())
    return model_path


def build_hf_tokenizer(sp_model_path: str, out_dir: str):
    """Convert the sentencepiece model to a transformers tokenizer saved beside it."""
    import shutil

    from transformers import LlamaTokenizer

    with tempfile.TemporaryDirectory() as staging:
        shutil.copy(sp_model_path, os.path.join(staging, "tokenizer.model"))
        tokenizer = LlamaTokenizer.from_pretrained(staging, legacy=False, add_bos_token=False)
    tokenizer.save_pretrained(out_dir)
    if os.path.abspath(sp_model_path) != os.path.abspath(os.path.join(out_dir, "tokenizer.model")):
        shutil.copy(sp_model_path, os.path.join(out_dir, "tokenizer.model"))
    return tokenizer


def build_model(config: ModelConfig, vocab_size: int, seed: int):
    """A randomly initialised model of the twin's shape, at the base model's context."""
    import torch
    from transformers import (
        GPTBigCodeConfig,
        GPTBigCodeForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
    )

    shape = config.tiny_shape
    context = config.base_context or config.max_context
    torch.manual_seed(seed)
    if config.architecture in ("llama", "mistral"):
        decoder_shape = dict(
            vocab_size=vocab_size,
            hidden_size=shape.hidden_size,
            intermediate_size=shape.intermediate_size,
            num_hidden_layers=shape.num_hidden_layers,
            num_attention_heads=shape.num_attention_heads,
            num_key_value_heads=shape.num_key_value_heads,
            max_position_embeddings=context,
            bos_token_id=1,
            eos_token_id=2,
            tie_word_embeddings=False,
        )
        if config.architecture == "mistral":
            return MistralForCausalLM(MistralConfig(**decoder_shape, sliding_window=None))
        return LlamaForCausalLM(LlamaConfig(**decoder_shape))
    hf_config = GPTBigCodeConfig(
        vocab_size=vocab_size,
        n_embd=shape.hidden_size,
        n_inner=shape.intermediate_size,
        n_layer=shape.num_hidden_layers,
        n_head=shape.num_attention_heads,
        n_positions=context,
        multi_query=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    return GPTBigCodeForCausalLM(hf_config)


def build_tiny(model_type: str, out_dir: str, corpus_text: str = DEFAULT_CORPUS_TEXT, seed: int = 0, vocab_size=None):
    config = get_model_config(model_type)
    if not config.is_tiny:
        raise ValueError(f"{model_type} is a full-size type; build_tiny makes CPU twins such as {model_type}_tiny")
    vocab_size = vocab_size or config.tiny_shape.vocab_size
    texts = corpus_texts(corpus_text)
    os.makedirs(out_dir, exist_ok=True)
    sp_model_path = train_sentencepiece(texts, vocab_size, out_dir)
    tokenizer = build_hf_tokenizer(sp_model_path, out_dir)
    model = build_model(config, len(tokenizer), seed)
    model.save_pretrained(out_dir)
    return out_dir


def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_type", default="openchat_tiny", help="a *_tiny registry type (default: openchat_tiny)")
    parser.add_argument("--out", required=True, help="folder to write the Hugging Face model and tokenizer to")
    parser.add_argument(
        "--corpus_text",
        default=DEFAULT_CORPUS_TEXT,
        help="UTF-8 plain-text file to train the tokenizer on, one sentence a line "
        "(default: the text of the bundled ShareGPT pages, shipped with ochat)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--vocab_size", type=int, default=None, help="tokenizer vocabulary (default: the twin's)")
    args = parser.parse_args(argv)
    try:
        out_dir = build_tiny(args.model_type, args.out, args.corpus_text, args.seed, args.vocab_size)
    except (FileNotFoundError, ValueError) as error:
        parser.exit(2, f"build_tiny: {error}\n")
    print(f"tiny {args.model_type} base model (no EOT token yet) written to {out_dir}")


if __name__ == "__main__":
    main()
