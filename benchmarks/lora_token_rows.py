"""How to keep the added <|end_of_turn|> token learning under LoRA: trainable token rows vs whole-matrix copies.

    python benchmarks/lora_token_rows.py

peft offers two ways: `trainable_token_indices` trains only the chosen rows of
the embedding and output layer; `modules_to_save` trains full copies of both
matrices. Each variant runs in its own process (LLaMA-shaped: vocab 32000,
hidden 1024, 2 layers, random init, LoRA rank 8 on all linears, AdamW, 3 steps
of batch 2 x 256 tokens, fp32 on the CPU) and reports its trainable parameters
and its peak resident memory above the memory before the model was built
(glibc's mmap threshold fixed so freed tensors leave the resident set).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

VOCAB, HIDDEN, EOT = 32000, 1024, 31999


def run_variant(variant: str) -> dict:
    import resource

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=2752,
        num_hidden_layers=2,
        num_attention_heads=16,
        num_key_value_heads=16,
        tie_word_embeddings=False,
        use_cache=False,
    )
    model = LlamaForCausalLM(config)
    extra = (
        {"trainable_token_indices": {"embed_tokens": [EOT], "lm_head": [EOT]}}
        if variant == "token_rows"
        else {"modules_to_save": ["embed_tokens", "lm_head"]}
    )
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", **extra))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    ids = torch.randint(0, VOCAB, (2, 256))
    ids[:, -1] = EOT
    for _ in range(3):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"variant": variant, "trainable": sum(p.numel() for p in trainable), "peak_mb": (peak - before) / 1e6}


def main(argv=None):
    from ochat.utils.cli import ArgumentParser

    parser = ArgumentParser(description=__doc__)
    parser.add_argument(
        "--variant", choices=("token_rows", "modules_to_save"), help="run one variant in this process (used internally)"
    )
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args.variant)))
        return
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    rows = []
    for variant in ("token_rows", "modules_to_save"):
        result = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--variant", variant],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"| {'EOT rows trained by':<28} | {'trainable params':>16} | {'peak MB above start':>19} |")
    print(f"|{'-' * 30}|{'-' * 18}|{'-' * 21}|")
    labels = {"token_rows": "trainable_token_indices", "modules_to_save": "modules_to_save"}
    for row in rows:
        print(f"| {labels[row['variant']]:<28} | {row['trainable']:>16,} | {row['peak_mb']:>19.0f} |")


if __name__ == "__main__":
    main()
