"""OpenAI ChatCompletions responses: completions, stream chunks, usage and model cards, as plain dicts.

chunk:  {"id": "chatcmpl-1f..", "object": "chat.completion.chunk", "created": 1732183200, "model": "openchat",
         "choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": null, "finish_reason": null}]}
logprobs (per choice): {"content": [{"token": " Hi", "logprob": -0.3, "bytes": [32, 72, 105],
                        "top_logprobs": [{"token": " Hi", "logprob": -0.3, "bytes": [32, 72, 105]}, ...]}],
                        "refusal": null}
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Optional


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def token_logprob(token: str, token_bytes: list[int], logprob: float, top: list[dict]) -> dict:
    """One entry of `choices[].logprobs.content`; `top` holds `{token, logprob, bytes}` dicts."""
    return {"token": token, "logprob": logprob, "bytes": token_bytes, "top_logprobs": top}


def choice_logprobs(content: Optional[list[dict]]) -> Optional[dict]:
    return None if content is None else {"content": content, "refusal": None}


def chat_completion(
    completion_id: str,
    created: int,
    model: str,
    texts: list[str],
    finish_reasons: list[str],
    prompt_tokens: int,
    completion_tokens: int,
    logprobs: Optional[list[Optional[list[dict]]]] = None,
) -> dict:
    logprobs = logprobs or [None] * len(texts)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": text},
                "logprobs": choice_logprobs(logprobs[index]),
                "finish_reason": finish_reason,
            }
            for index, (text, finish_reason) in enumerate(zip(texts, finish_reasons))
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


class ChunkEncoder:
    """Stream chunks of one completion as server-sent-event bytes, built fast.

    Streaming serializes one chunk per token per client, so the constant part
    (id, created, model) is encoded once; the result parses to OpenAI's
    `chat.completion.chunk` shape (tested against it).
    """

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool = False):
        head = json.dumps(
            {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model},
            ensure_ascii=False,
        )
        self._head = b"data: " + head[:-1].encode() + b', "choices": [{"index": '
        self._tail = b"}]" + (b', "usage": null' if include_usage else b"") + b"}\n\n"

    def encode(
        self, index: int, delta: dict, finish_reason: Optional[str] = None, logprobs: Optional[list[dict]] = None
    ) -> bytes:
        logprobs_json = (
            b"null" if logprobs is None else json.dumps(choice_logprobs(logprobs), ensure_ascii=False).encode()
        )
        return b"".join(
            (
                self._head,
                str(index).encode(),
                b', "delta": ',
                json.dumps(delta, ensure_ascii=False).encode(),
                b', "logprobs": ',
                logprobs_json,
                b', "finish_reason": ',
                json.dumps(finish_reason).encode(),
                self._tail,
            )
        )


def usage_chunk(completion_id: str, created: int, model: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def model_card(model_id: str, created: int, condition: Optional[str] = None) -> dict:
    """OpenAI's model object; a conditioned (C-RLFT) model adds the condition requests get by default."""
    card = {"id": model_id, "object": "model", "created": created, "owned_by": "ochat"}
    if condition is not None:
        card["condition"] = condition
    return card


def model_list(model_ids: list[str], created: int, condition: Optional[str] = None) -> dict:
    return {"object": "list", "data": [model_card(model_id, created, condition) for model_id in model_ids]}
