"""Base-model tools: the model factory, tiny twins, the EOT token and context extension."""

from ochat.models.loading import context_length, extend_context, load_model, load_model_config

__all__ = ["context_length", "extend_context", "load_model", "load_model_config"]
