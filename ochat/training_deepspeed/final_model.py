"""The trained model as the run's result: gathered whole on rank 0 (from ZeRO-3 shards, or a LoRA model rebuilt
on a full-precision base), then written as a plain Hugging Face folder that stops on <|end_of_turn|>; LoRA runs
also write the peft adapter alone to SAVE_PATH/adapter.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from ochat.training_deepspeed.lora import ADAPTER_DIR, apply_lora, lora_settings

if TYPE_CHECKING:
    from ochat.training_deepspeed.preflight import Setup


def gather_final_model(engine, args, setup: Setup, bf16: bool, rank: int):
    """The trained model, whole, on rank 0 (None elsewhere): under ZeRO-3, and for LoRA, rebuilt on the CPU.

    ZeRO-3 holds only a shard of each parameter per rank, so its full state is gathered layer by layer to
    rank 0 (every rank takes part). A LoRA model is rebuilt on a full-precision (never 4-bit) base in host
    memory with the trained adapter and token rows loaded in, so the merge writes plain weights.
    """
    import torch

    from ochat.models import load_model

    zero3 = engine.zero_optimization_partition_weights()
    if not zero3 and not args.lora_rank:
        return engine.module if rank == 0 else None
    trainable_names = {name for name, parameter in engine.module.named_parameters() if parameter.requires_grad}
    if zero3:
        state = engine._zero3_consolidated_16bit_state_dict(exclude_frozen_parameters=bool(args.lora_rank))
    else:
        state = engine.module.state_dict() if rank == 0 else None
    if rank != 0:
        return None
    model = load_model(setup.config, args.model_path, dtype=torch.bfloat16 if bf16 else torch.float32)
    if args.lora_rank:
        model = apply_lora(model, lora_settings(args), [setup.tokenizer.eot_token_id])
        state = {name: tensor for name, tensor in state.items() if name in trainable_names}
        missing = trainable_names - set(state)
        if missing:
            raise RuntimeError(f"trained adapter weights missing from the gathered state: {sorted(missing)[:5]}")
        unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    else:
        unexpected = model.load_state_dict(state, strict=True).unexpected_keys
    if unexpected:
        raise RuntimeError(f"gathered state does not fit the rebuilt model: {unexpected[:5]}")
    return model


def save_final_model(final_model, args, setup: Setup, log) -> None:
    """Rank 0 writes the adapter (LoRA), then the model, the adapter merged into the base."""
    if args.lora_rank:
        adapter_path = os.path.join(args.save_path, ADAPTER_DIR)
        final_model.save_pretrained(adapter_path)
        log(f"LoRA adapter written to {adapter_path}")
        final_model = final_model.merge_and_unload()
    save_hf_checkpoint(final_model, setup.config, setup.tokenizer, args.model_path, args.save_path)
    log(f"fine-tuned model written to {args.save_path}" + (" (adapter merged into the base)" if args.lora_rank else ""))


def save_hf_checkpoint(model, config, tokenizer, model_path: str, save_path: str) -> None:
    """The fine-tuned model as a plain Hugging Face folder that stops generating on <|end_of_turn|>."""
    from transformers import GenerationConfig

    from ochat.config.conversation_template import chat_template_jinja

    os.makedirs(save_path, exist_ok=True)
    stop_ids = tokenizer.stop_token_ids
    hf_tokenizer = tokenizer.hf_tokenizer
    model.config.use_cache = True
    model.config.eos_token_id = stop_ids[0]
    model.config._attn_implementation = "sdpa"
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=stop_ids, pad_token_id=hf_tokenizer.pad_token_id
    )
    model.save_pretrained(save_path)
    hf_tokenizer.chat_template = hf_tokenizer.chat_template or chat_template_jinja(config)
    hf_tokenizer.save_pretrained(save_path)
    sp_model = os.path.join(model_path, "tokenizer.model")  # the slow reference our tokenizer loader uses
    if os.path.isfile(sp_model):
        shutil.copy(sp_model, os.path.join(save_path, "tokenizer.model"))
