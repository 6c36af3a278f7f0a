"""Add the `<|end_of_turn|>` token to a base model before fine-tuning.

    python -m ochat.models.add_eot_token --model_type openchat --in llama-13b --out llama-13b-eot

The tokenizer gains one special token; input embeddings and LM head gain one
row each. LLaMA types start the new rows at the mean of all existing rows (the
token then behaves like an average token rather than noise); StarCoder types
draw them from N(0, 0.02), its initializer. Weights stay in the checkpoint's
own dtype (a 13B model is never copied to fp32). The saved folder also carries
the model type's context (RoPE extension for `openchat_8192`), a generation
config that stops on EOT, and the template as the tokenizer's chat template.
"""

from __future__ import annotations

import argparse
import os

import torch

from ochat.config import ChatTokenizer, get_model_config
from ochat.config.conversation_template import chat_template_jinja
from ochat.models.loading import ROPE_SCALING_CHOICES, load_model
from ochat.utils.cli import ArgumentParser


def init_new_rows(weight: torch.Tensor, old_rows: int, method: str, generator: torch.Generator) -> None:
    """Fill rows old_rows.. of an embedding-like matrix in place."""
    with torch.no_grad():
        if method == "mean":
            mean = torch.mean(weight[:old_rows], dim=0, dtype=torch.float32)
            weight[old_rows:] = mean.to(weight.dtype)
        elif method == "normal":
            noise = torch.empty(weight.shape[0] - old_rows, weight.shape[1], dtype=torch.float32)
            noise.normal_(0.0, 0.02, generator=generator)
            weight[old_rows:] = noise.to(weight.dtype)
        else:
            raise ValueError(f"unknown EOT initialisation {method!r}")


def add_eot_token(model_type: str, in_dir: str, out_dir: str, rope_scaling: str = "none", seed: int = 0) -> str:
    from transformers import AutoTokenizer, GenerationConfig

    config = get_model_config(model_type)
    hf_tokenizer = AutoTokenizer.from_pretrained(in_dir)
    if config.eot_token in hf_tokenizer.get_vocab():
        raise ValueError(f"{in_dir} already has {config.eot_token!r}; pass the base model, not a converted one")
    model = load_model(config, in_dir, rope_scaling=rope_scaling)
    old_rows = model.get_input_embeddings().weight.shape[0]

    hf_tokenizer.add_special_tokens({"additional_special_tokens": [config.eot_token]})
    new_rows = max(len(hf_tokenizer), old_rows)
    model.resize_token_embeddings(new_rows, mean_resizing=False)
    generator = torch.Generator().manual_seed(seed)
    init_new_rows(model.get_input_embeddings().weight, old_rows, config.eot_init, generator)
    output_embeddings = model.get_output_embeddings()
    if output_embeddings is not None and output_embeddings.weight is not model.get_input_embeddings().weight:
        init_new_rows(output_embeddings.weight, old_rows, config.eot_init, generator)

    tokenizer = ChatTokenizer(hf_tokenizer=hf_tokenizer, config=config)
    stop_ids = tokenizer.stop_token_ids
    hf_tokenizer.chat_template = chat_template_jinja(config)
    hf_tokenizer.eos_token = config.eot_token  # chat clients stop on it
    hf_tokenizer.pad_token = hf_tokenizer.pad_token or hf_tokenizer.unk_token
    model.config.eos_token_id = stop_ids[0]
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop_ids,
        pad_token_id=hf_tokenizer.pad_token_id,
    )
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    hf_tokenizer.save_pretrained(out_dir)
    sp_model = os.path.join(in_dir, "tokenizer.model")
    if os.path.exists(sp_model) and not os.path.exists(os.path.join(out_dir, "tokenizer.model")):
        import shutil

        shutil.copy(sp_model, out_dir)
    return out_dir


def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model_type", required=True, help="registry model type, e.g. openchat, openchat_8192, opencoder"
    )
    parser.add_argument("--in", dest="in_dir", required=True, help="base model folder (Hugging Face format)")
    parser.add_argument("--out", dest="out_dir", required=True, help="folder for the model with the EOT token")
    parser.add_argument(
        "--rope_scaling",
        choices=ROPE_SCALING_CHOICES,
        default="none",
        help="how to reach the type's context when it exceeds the base model's (default: none = extrapolate)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for N(0, 0.02) initialisation")
    args = parser.parse_args(argv)
    add_eot_token(args.model_type, args.in_dir, args.out_dir, args.rope_scaling, args.seed)
    print(f"{args.model_type}: added <|end_of_turn|> to {args.in_dir}, written to {args.out_dir}")


if __name__ == "__main__":
    main()
