"""Model set-up for a run: loading (bf16 on a GPU, 4-bit for QLoRA), the attention for packed rows,
gradient checkpointing, LoRA with the <|end_of_turn|> rows trainable, then the optimizer, the schedule and the
DeepSpeed engine around it all.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ochat.training_deepspeed.deepspeed_settings import TrainingSetupError
from ochat.training_deepspeed.lora import apply_lora, lora_settings, trainable_parameter_count

if TYPE_CHECKING:
    from ochat.training_deepspeed.preflight import Setup


def build_model(args, setup: Setup, bf16: bool, device, log):
    """The model to train: context extended by the registry, 4-bit base for QLoRA, LoRA adapters when asked."""
    import torch

    from ochat.models import load_model
    from ochat.training_deepspeed.modeling import choose_attn_implementation

    attn_implementation = choose_attn_implementation(args.packing, setup.on_cuda)
    quantization = None
    if args.load_in_4bit:
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
        )
    model = load_model(
        setup.config,
        args.model_path,
        dtype=torch.bfloat16 if bf16 else torch.float32,
        attn_implementation=attn_implementation,
        quantization_config=quantization,
        device=str(device) if quantization is not None else None,
    )
    model.config.use_cache = False
    if not args.no_gradient_checkpointing:
        enable_activation_checkpointing(model)
    log(
        f"model {args.model_path} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), "
        f"attention {attn_implementation}, gradient checkpointing {'off' if args.no_gradient_checkpointing else 'on'}"
    )
    if args.lora_rank:
        try:
            model = apply_lora(
                model,
                lora_settings(args),
                [setup.tokenizer.eot_token_id],
                quantized=args.load_in_4bit,
                gradient_checkpointing=not args.no_gradient_checkpointing,
            )
        except ValueError as error:
            raise TrainingSetupError(str(error)) from None
        trainable, total = trainable_parameter_count(model)
        log(
            f"LoRA rank {args.lora_rank}, alpha {args.lora_alpha:g}, dropout {args.lora_dropout:g}, targets "
            f"{args.lora_target_modules}{', 4-bit base' if args.load_in_4bit else ''}: {trainable:,} of {total:,} "
            f"parameters trainable (with the <|end_of_turn|> embedding and output rows)"
        )
    return model


def build_engine(args, setup: Setup, model, log):
    """AdamW (DeepSpeed's CPU Adam when the optimizer is offloaded from a GPU) and the warm-up + cosine
    schedule, with the model wrapped by DeepSpeed."""
    import deepspeed
    import torch
    from transformers import get_cosine_schedule_with_warmup

    trainable_parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    zero = setup.deepspeed_config.get("zero_optimization", {})
    if setup.on_cuda and zero.get("offload_optimizer", {}).get("device", "none") not in (None, "none"):
        from deepspeed.ops.adam import DeepSpeedCPUAdam  # the optimizer step runs on the host, vectorised

        optimizer = DeepSpeedCPUAdam(trainable_parameters, lr=args.lr, weight_decay=args.weight_decay, adamw_mode=True)
    else:
        optimizer = torch.optim.AdamW(
            trainable_parameters, lr=args.lr, weight_decay=args.weight_decay, fused=setup.on_cuda or None
        )
    log(
        f"ZeRO stage {zero.get('stage', 0)}, optimizer offload {zero.get('offload_optimizer', {}).get('device', 'none')}, "
        f"parameter offload {zero.get('offload_param', {}).get('device', 'none')}"
    )
    warmup_steps = math.ceil(setup.total_steps * args.warmup_ratio)
    engine, _, _, lr_scheduler = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=lambda opt: get_cosine_schedule_with_warmup(opt, warmup_steps, setup.total_steps),
        config=dict(setup.deepspeed_config),
    )
    return engine, lr_scheduler


def enable_activation_checkpointing(model) -> None:
    """Recompute layer activations in the backward pass (transformers renamed the API in 5.x)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
