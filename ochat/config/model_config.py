"""The model registry: one data-only `ModelConfig` per model type.

Data conversion, training, serving and evaluation look a model type up here by
name (`get_model_config("openchat")`) and never re-implement its template.
Rendering lives in `ochat.config.conversation_template`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Optional

EOT_TOKEN = "<|end_of_turn|>"


@dataclass(frozen=True)
class TinyShape:
    """Size of a randomly initialised CPU twin, small enough to train in seconds."""

    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 344
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 4


@dataclass(frozen=True)
class ModelConfig:
    """Everything that makes a model type: prompt format, special tokens, context, family."""

    name: str
    architecture: str  # "llama", "mistral", "gpt_bigcode", or "any" causal LM: which transformers class builds it
    max_context: int  # 0: the checkpoint's own context
    # conversation role ("human", "gpt", "system") -> text before the turn; content follows after one space
    role_prefix: Mapping[str, str]
    ai_role: str = "gpt"
    eot_token: Optional[str] = EOT_TOKEN  # None: the checkpoint's own end-of-turn (its tokenizer's eos_token)
    # whether turns start with the tokenizer's own BOS (resolved by id from its special tokens: `<s>` in
    # LLaMA, `<|im_start|>` in SmolLM2); the string names LLaMA's for readers, it is never looked up as text
    bos_token: Optional[str] = "<s>"
    system_prompt: Optional[str] = None  # applied when a conversation brings none
    eot_init: str = "mean"  # new EOT embedding rows: "mean" of existing rows, or "normal" N(0, 0.02)
    base_context: Optional[int] = None  # the base model's context when this type extends it (RoPE)
    tiny_shape: Optional[TinyShape] = None  # set on CPU twins: `build_tiny` makes such a model
    extra_stop_tokens: tuple = field(default=())  # further tokens that end generation (e.g. "</s>")
    # C-RLFT types put a data-source condition before every role ("GPT4 User:"); None: the type takes no condition
    inference_condition: Optional[str] = None

    @property
    def uses_checkpoint_template(self) -> bool:
        """The type renders prompts with the checkpoint's own chat template (`hf_chat`)."""
        return self.eot_token is None

    @property
    def is_tiny(self) -> bool:
        return self.tiny_shape is not None

    @property
    def is_conditioned(self) -> bool:
        return self.inference_condition is not None


_OPENCHAT_ROLES = {"human": "Human:", "gpt": "Assistant:", "system": "System:"}
_OPENCODER_ROLES = {"human": "User:", "gpt": "Assistant:", "system": "System:"}
# Conditioned types: the prefix is f"{condition} {role}" ("GPT4 User:"), just the role when the condition is empty.
_CONDITIONED_ROLES = {"human": "User:", "gpt": "Assistant:", "system": "System:"}


def _tiny_twin(config: ModelConfig, **changes) -> ModelConfig:
    fields = dict(config.__dict__, name=config.name + "_tiny", tiny_shape=TinyShape())
    fields.update(changes)
    return ModelConfig(**fields)


_BASE_TYPES = [
    ModelConfig(
        name="openchat",
        architecture="llama",
        max_context=2048,
        role_prefix=_OPENCHAT_ROLES,
        bos_token="<s>",
        extra_stop_tokens=("</s>",),
    ),
    ModelConfig(
        name="openchat_8192",
        architecture="llama",
        max_context=8192,
        base_context=2048,
        role_prefix=_OPENCHAT_ROLES,
        bos_token="<s>",
        extra_stop_tokens=("</s>",),
    ),
    ModelConfig(
        name="opencoder",
        architecture="gpt_bigcode",
        max_context=8192,
        role_prefix=_OPENCODER_ROLES,
        bos_token=None,
        eot_init="normal",
        extra_stop_tokens=("<|endoftext|>",),
    ),
    ModelConfig(
        name="openchat_v3.2",
        architecture="llama",
        max_context=4096,
        role_prefix=_CONDITIONED_ROLES,
        bos_token="<s>",
        extra_stop_tokens=("</s>",),
        inference_condition="GPT4",
    ),
    ModelConfig(
        name="openchat_3.5",
        architecture="mistral",
        max_context=8192,
        role_prefix=_CONDITIONED_ROLES,
        bos_token="<s>",
        extra_stop_tokens=("</s>",),
        inference_condition="GPT4 Correct",
    ),
]

MODEL_CONFIGS: dict[str, ModelConfig] = {}
for _config in _BASE_TYPES:
    MODEL_CONFIGS[_config.name] = _config
    MODEL_CONFIGS[_config.name + "_tiny"] = _tiny_twin(_config)

# Any instruct checkpoint as shipped: its own chat template, its own end token, its own context.
MODEL_CONFIGS["hf_chat"] = ModelConfig(
    name="hf_chat",
    architecture="any",
    max_context=0,  # read from the checkpoint (`with_checkpoint_context`)
    role_prefix={"human": "", "gpt": "", "system": ""},
    eot_token=None,
    bos_token=None,
)


def get_model_config(model_type: str, model_path: Optional[str] = None) -> ModelConfig:
    """Look a model type up; an unknown name is a clear error listing the known ones.

    A type whose context comes from the checkpoint (`hf_chat`) reads it from `model_path`'s config.json.
    """
    try:
        config = MODEL_CONFIGS[model_type]
    except KeyError:
        known = ", ".join(sorted(MODEL_CONFIGS))
        raise ValueError(f"unknown model type {model_type!r}; known model types: {known}") from None
    if config.max_context == 0 and model_path is not None:
        config = replace(config, max_context=checkpoint_context(model_path))
    return config


def checkpoint_context(model_path: str) -> int:
    """The context length a Hugging Face folder's config.json declares."""
    config_file = os.path.join(model_path, "config.json")
    try:
        with open(config_file, encoding="utf-8") as handle:
            hf_config = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the context length from {config_file}: {error}") from None
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(hf_config.get(key), int) and hf_config[key] > 0:
            return hf_config[key]
    raise ValueError(f"{config_file} declares no context length (max_position_embeddings)")
