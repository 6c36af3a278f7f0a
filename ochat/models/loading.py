"""Model factory and context extension for registry model types.

Every stage loads weights through `load_model`, so a base LLaMA with a 2048
context becomes an `openchat_8192` model the same way everywhere: RoPE
extrapolated to 8192 with the same base frequency by default, or, on request,
one of transformers' RoPE scaling schemes:

    none     max_position_embeddings = 8192, rope unchanged (OpenChat's choice)
    linear   position interpolation: positions divided by 8192 / base context
    dynamic  NTK-aware scaling whose base grows with the sequence length
    yarn     YaRN: NTK-by-parts interpolation with attention temperature
"""

from __future__ import annotations

import os
from typing import Optional

from ochat.config.model_config import ModelConfig

ROPE_SCALING_CHOICES = ("none", "linear", "dynamic", "yarn")


def context_length(hf_config) -> int:
    """The positions a transformers config supports, whatever the architecture names it."""
    for name in ("max_position_embeddings", "n_positions"):
        if getattr(hf_config, name, None):
            return int(getattr(hf_config, name))
    raise ValueError(f"cannot tell the context length of a {type(hf_config).__name__}")


def extend_context(hf_config, config: ModelConfig, rope_scaling: str = "none") -> bool:
    """Raise a LLaMA config's context to the model type's; returns True when it changed it."""
    if rope_scaling not in ROPE_SCALING_CHOICES:
        raise ValueError(f"rope_scaling must be one of {ROPE_SCALING_CHOICES}, not {rope_scaling!r}")
    current = context_length(hf_config)
    if current >= config.max_context:
        return False
    if config.architecture != "llama":
        raise ValueError(
            f"{config.name} needs a context of {config.max_context} but the model at hand has {current}; "
            "context extension is only offered for LLaMA (RoPE) models"
        )
    rope = dict(getattr(hf_config, "rope_parameters", None) or {"rope_type": "default", "rope_theta": 10000.0})
    if rope_scaling != "none":
        rope.update(rope_type=rope_scaling, factor=config.max_context / current)
        if rope_scaling == "yarn":
            rope["original_max_position_embeddings"] = current
        hf_config.rope_parameters = rope
    hf_config.max_position_embeddings = config.max_context
    return True


def load_model_config(config: ModelConfig, path: str, rope_scaling: str = "none"):
    """The transformers config of a checkpoint, extended to the model type's context."""
    from transformers import AutoConfig

    if not os.path.exists(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path!r} is not a Hugging Face model folder (no config.json)")
    hf_config = AutoConfig.from_pretrained(path)
    if config.architecture == "any":
        return hf_config
    expected = {"llama": "llama", "mistral": "mistral", "gpt_bigcode": "gpt_bigcode"}[config.architecture]
    if hf_config.model_type != expected:
        raise ValueError(
            f"model type {config.name} expects a {expected} checkpoint, but {path} holds {hf_config.model_type}"
        )
    extend_context(hf_config, config, rope_scaling)
    return hf_config


def load_model(
    config: ModelConfig,
    path: str,
    dtype=None,
    device: Optional[str] = None,
    rope_scaling: str = "none",
    attn_implementation: Optional[str] = None,
    adapter_path: Optional[str] = None,
    quantization_config=None,
):
    """Load a causal LM for a model type; dtype None keeps the checkpoint's own dtype.

    `adapter_path`: a peft LoRA adapter (a training run's SAVE_PATH/adapter) applied to the base at `path`
    and merged into it, so the result is a plain transformers model that runs as fast as the base.
    `quantization_config`: passed to `from_pretrained` (e.g. 4-bit bitsandbytes for QLoRA training).
    """
    from transformers import AutoModelForCausalLM

    hf_config = load_model_config(config, path, rope_scaling)
    kwargs = {"config": hf_config, "dtype": dtype if dtype is not None else "auto"}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        if device is not None:
            kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if adapter_path is not None:
        model = merge_adapter(model, adapter_path)
    if device is not None and quantization_config is None:
        model.to(device)
    return model


def merge_adapter(model, adapter_path: str):
    """The base with a peft adapter merged in (its LoRA updates and any trained token rows)."""
    if not os.path.isfile(os.path.join(adapter_path, "adapter_config.json")):
        raise FileNotFoundError(
            f"{adapter_path!r} is not a peft adapter folder (no adapter_config.json); "
            "a LoRA training run writes one to SAVE_PATH/adapter"
        )
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, adapter_path).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as error:
        raise ValueError(f"adapter {adapter_path} does not fit the base model: {error}") from None
