"""The model registry and the conversation template every stage shares."""

from ochat.config.conversation_template import (
    RenderedTurn,
    Sample,
    check_condition,
    join_turns,
    render_conversation,
    render_conversations,
    render_turns_batch,
    role_prefix,
)
from ochat.config.model_config import EOT_TOKEN, MODEL_CONFIGS, ModelConfig, TinyShape, get_model_config
from ochat.config.tokenizer import ChatTokenizer, load_tokenizer

__all__ = [
    "EOT_TOKEN",
    "MODEL_CONFIGS",
    "ChatTokenizer",
    "ModelConfig",
    "RenderedTurn",
    "Sample",
    "TinyShape",
    "check_condition",
    "get_model_config",
    "join_turns",
    "load_tokenizer",
    "render_conversation",
    "render_conversations",
    "render_turns_batch",
    "role_prefix",
]
