"""The types that cross between the HTTP side and the engine: what to generate (`SamplingParams`), what came out
(`TokenEvent`), why a sequence ended (`FinishReason`, `EngineError`), what a replica holds (`ReplicaLimits`), the
one check of whether a request can ever run on it (`admission_error`), and `NoReplica` when none is alive.

Pure Python, so the HTTP process imports them without torch. Events cross Ray as these dataclasses:

    TokenEvent("chatcmpl-1-0", 345, None, logprob=-0.7)
    TokenEvent("chatcmpl-1-0", None, FinishReason.STOP)
    TokenEvent("chatcmpl-2-0", None, FinishReason.ERROR, error=EngineError("The model produced ...", "invalid_logits"))
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

GREEDY_TEMPERATURE = 1e-5  # at or below it sampling is argmax: dividing logits by it overflows the softmax
MAX_TOP_LOGPROBS = 20
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


@dataclass
class SamplingParams:
    """How one sequence is continued; temperature 0 (or at most 1e-5) means greedy (argmax)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: Optional[int] = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: bool = False
    top_logprobs: int = 0  # 0..20 alternatives per token, most likely first
    response_format: Optional[dict] = None  # OpenAI's dict; None or {"type": "text"} is free text
    logit_bias: Optional[dict[int, float]] = None  # token id -> added to its logit, each in [-100, 100]


class FinishReason(str, enum.Enum):
    """Why a sequence ended: OpenAI's "stop" and "length", or cancelled ("abort"), or failed ("error", with the
    event's `error` saying why)."""

    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"
    ERROR = "error"


class EngineError(Exception):
    """Why a sequence could not be finished: its own failure (grammar, logits, sampling), a request the engine
    refused, a failed batch step, or a lost replica. The message is fit for the client (the detail stays in the
    replica's log); `code` names the kind, e.g. "grammar_failed", "invalid_request", "engine_error"."""

    def __init__(self, message: str, code: str = "engine_error"):
        super().__init__(message)
        self.code = code


class NoReplica(Exception):
    """No model replica is alive to take a request (the HTTP side answers 503 and asks to retry)."""


@dataclass(frozen=True)
class TokenEvent:
    """One step of one sequence. `token_id` is None when the sequence ended without a new visible token (a stop
    id, or an error); `finish_reason` is None while it runs."""

    seq_id: str
    token_id: Optional[int]
    finish_reason: Optional[FinishReason]
    logprob: Optional[float] = None  # of the chosen token, under the distribution sampled from
    top_logprobs: tuple = ()  # ((token_id, logprob), ...) most likely first
    error: Optional[EngineError] = None  # set exactly when `finish_reason` is ERROR


@dataclass(frozen=True)
class ReplicaLimits:
    """What one replica holds, reported once its model is loaded (`EngineWorker.ready()`)."""

    device: str
    dtype: str
    max_batch_size: int
    kv_cache_capacity_tokens: int
    max_context: int
    weights_gib: float
    kv_cache_gib: float
    kv_bytes_per_token: int


@dataclass(frozen=True)
class Refusal:
    """Why a request can never run, in OpenAI's error terms: the message, the request field to change, the code."""

    message: str
    param: str
    code: Optional[str] = None


def admission_error(
    limits: ReplicaLimits, prompt_tokens: int, max_new_tokens: Optional[int], n: int = 1
) -> Optional[Refusal]:
    """Why a request can never run on a replica with `limits`, or None; the front checks it before queueing a
    request, the engine again when a sequence is added (`max_new_tokens` None: whatever room the context leaves).

    A request that merely has to wait for room is admissible; this refuses only what no amount of waiting fixes.
    """
    max_context, capacity = limits.max_context, limits.kv_cache_capacity_tokens
    if prompt_tokens >= max_context:
        return Refusal(
            f"This model's maximum context length is {max_context} tokens. However, your "
            f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the "
            "messages.",
            "messages",
            CONTEXT_LENGTH_EXCEEDED,
        )
    if max_new_tokens is not None and prompt_tokens + max_new_tokens > max_context:
        return Refusal(
            f"This model's maximum context length is {max_context} tokens. However, you "
            f"requested {prompt_tokens + max_new_tokens} tokens ({prompt_tokens} in the "
            f"messages, {max_new_tokens} in the completion). Please reduce the length of "
            "the messages or completion.",
            "max_tokens",
            CONTEXT_LENGTH_EXCEEDED,
        )
    completion_param = "messages" if max_new_tokens is None else "max_tokens"
    total = prompt_tokens + (max_new_tokens or 0)
    if total > capacity:
        return Refusal(
            f"The request needs {total} tokens of KV cache ({prompt_tokens} in the messages, "
            f"{max_new_tokens or 0} in the completion), more than a replica's budget of {capacity} tokens. "
            "Please reduce the length of the messages or completion.",
            completion_param,
            CONTEXT_LENGTH_EXCEEDED,
        )
    # One choice that cannot start is the prompt's or the completion's fault; more choices than can start, n's.
    for choices, param, code in ((1, completion_param, CONTEXT_LENGTH_EXCEEDED), (n, "n", None)):
        if choices > limits.max_batch_size:
            return Refusal(
                f"n={choices} asks for more choices than a replica runs at once ({limits.max_batch_size}).", param, code
            )
        if choices * (prompt_tokens + 1) > capacity:
            return Refusal(
                f"n={choices} choices of a {prompt_tokens}-token prompt need {choices * (prompt_tokens + 1)} tokens "
                f"of KV cache to start together, more than a replica's budget of {capacity} tokens.",
                param,
                code,
            )
    return None
