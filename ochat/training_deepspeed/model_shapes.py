"""Model shapes for the memory planner: the published models it knows by name, and what the memory depends on,
counted on a model built on the meta device from its config (no weights, so a 70B shape costs nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

# Shapes of the published models (config.json fields), so no download is needed to plan them.
BUILTIN_CONFIGS = {
    # TinyLlama-1.1B: the ~1B LLaMA the GPU benchmarks measure (grouped-query attention, 4 KV heads).
    "llama-1b": dict(
        model_type="llama",
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
        max_position_embeddings=2048,
    ),
    "llama-7b": dict(
        model_type="llama",
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32001,
        max_position_embeddings=2048,
    ),
    "llama-13b": dict(
        model_type="llama",
        hidden_size=5120,
        intermediate_size=13824,
        num_hidden_layers=40,
        num_attention_heads=40,
        num_key_value_heads=40,
        vocab_size=32001,
        max_position_embeddings=2048,
    ),
    "llama-70b": dict(
        model_type="llama",
        hidden_size=8192,
        intermediate_size=28672,
        num_hidden_layers=80,
        num_attention_heads=64,
        num_key_value_heads=8,
        vocab_size=32001,
        max_position_embeddings=4096,
    ),
    "mistral-7b": dict(
        model_type="mistral",
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=32001,
        max_position_embeddings=8192,
    ),
}


@dataclass
class ModelShape:
    """What the memory depends on, read from a model built on the meta device."""

    params: int
    linear_params: int  # parameters of the linear layers of attention and MLP (what LoRA adapts, QLoRA quantizes)
    largest_layer_params: int
    hidden_size: int
    intermediate_size: int
    kv_size: int  # key/value heads x head dim
    num_layers: int
    vocab_size: int
    lora_params_per_rank: int  # trainable LoRA parameters per unit of rank (sum of in + out features)


def hf_config_of(model_path: str | None = None, model_config: str | None = None):
    from transformers import AutoConfig

    if model_config is not None:
        if model_config not in BUILTIN_CONFIGS:
            raise ValueError(f"unknown --model_config {model_config!r}; built in: {', '.join(BUILTIN_CONFIGS)}")
        fields = dict(BUILTIN_CONFIGS[model_config])
        return AutoConfig.for_model(fields.pop("model_type"), **fields)
    return AutoConfig.from_pretrained(model_path)


def model_shape(hf_config) -> ModelShape:
    """Count parameters of the model built from `hf_config` on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    seen, params = set(), 0
    for parameter in model.parameters():
        if id(parameter) not in seen:
            seen.add(id(parameter))
            params += parameter.numel()
    output = model.get_output_embeddings()
    linear_params = lora_per_rank = largest = 0
    for module in model.modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        largest = max(largest, own)
        if isinstance(module, torch.nn.Linear) and module is not output:
            linear_params += module.weight.numel()
            lora_per_rank += module.in_features + module.out_features
    heads = hf_config.num_attention_heads
    head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // heads
    kv_heads = getattr(hf_config, "num_key_value_heads", None) or heads
    intermediate = getattr(hf_config, "intermediate_size", None) or 4 * hf_config.hidden_size
    return ModelShape(
        params=params,
        linear_params=linear_params,
        largest_layer_params=largest,
        hidden_size=hf_config.hidden_size,
        intermediate_size=intermediate,
        kv_size=kv_heads * head_dim,
        num_layers=hf_config.num_hidden_layers,
        vocab_size=hf_config.vocab_size,
        lora_params_per_rank=lora_per_rank,
    )
