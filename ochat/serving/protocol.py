"""OpenAI ChatCompletions wire format: request validation, response shapes, and the one error builder.

Nothing here touches the model or aiohttp. A request body becomes a
`ChatCompletionRequest` or an `OpenAIError` naming the offending `param`;
responses and stream chunks are plain dicts in OpenAI's shapes:

    error:  {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": null}}
    chunk:  {"id": "chatcmpl-1f..", "object": "chat.completion.chunk", "created": 1732183200, "model": "openchat",
             "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": null}]}
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

# OpenAI role -> registry conversation role; "developer" is OpenAI's newer name for a system message.
ROLE_TO_TEMPLATE = {"system": "system", "developer": "system", "user": "human", "assistant": "gpt"}
MAX_STOP_SEQUENCES = 4
MAX_CHOICES = 16


class OpenAIError(Exception):
    """An error the client should see, with its HTTP status and OpenAI error fields."""

    def __init__(self, status: int, message: str, param: Optional[str] = None,
                 error_type: Optional[str] = None, code: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.error_type = error_type or _default_type(status)
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.error_type, self.param, self.code)


def _default_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 404:
        return "invalid_request_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(message: str, error_type: str = "invalid_request_error", param: Optional[str] = None,
               code: Optional[str] = None) -> dict:
    """The one place OpenAI's error JSON is built; every handler, middleware and stream uses it."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def bad_request(message: str, param: Optional[str], code: Optional[str] = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


@dataclass
class ChatCompletionRequest:
    """A validated request; `conversation` is in the registry's items form."""

    model: str
    conversation: list[dict]
    max_tokens: Optional[int] = None
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: Optional[int] = None
    stream: bool = False
    include_usage: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    user: Optional[str] = None
    condition: Optional[str] = None  # C-RLFT condition (an extra body field); None: the server's default


def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(f"{name} must be a number, not {type(value).__name__}", name)
    if not low <= value <= high:
        raise bad_request(f"{value} is not a valid {name}: it must be between {low} and {high}", name)
    return float(value)


def _integer(body: dict, name: str, low: int, high: int) -> Optional[int]:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer, not {type(value).__name__}", name)
    if not low <= value <= high:
        raise bad_request(f"{value} is not a valid {name}: it must be between {low} and {high}", name)
    return value


def _message_text(content: Any, param: str) -> str:
    """Message content: a string, or a list of text parts (OpenAI's multi-part form)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad_request("only text content parts ({'type': 'text', 'text': ...}) are supported",
                                  f"{param}[{index}]")
            texts.append(part["text"])
        return "".join(texts)
    raise bad_request(f"content must be a string or a list of text parts, not {type(content).__name__}", param)


def _conversation(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list of {'role', 'content'} objects", "messages")
    conversation = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"each message must be an object, not {type(message).__name__}", param)
        role = message.get("role")
        if role not in ROLE_TO_TEMPLATE:
            raise bad_request(f"role {role!r} is not supported; use one of {sorted(ROLE_TO_TEMPLATE)}",
                              f"{param}.role")
        content = message.get("content")
        if content is None and role == "assistant":
            content = ""
        conversation.append({"from": ROLE_TO_TEMPLATE[role], "value": _message_text(content, f"{param}.content")})
    return conversation


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad_request("stop must be a string or a list of strings", "stop")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise bad_request(f"stop may hold at most {MAX_STOP_SEQUENCES} sequences", "stop")
    if any(s == "" for s in stops):
        raise bad_request("stop sequences must not be empty", "stop")
    return stops


def _reject_unsupported(body: dict) -> None:
    """Options that would change the answer's meaning are refused rather than silently ignored."""
    if body.get("logprobs") or body.get("top_logprobs"):
        raise bad_request("logprobs are not supported by this server", "logprobs")
    for name in ("tools", "functions"):
        if body.get(name):
            raise bad_request(f"{name} (function calling) is not supported by this server", name)
    if body.get("logit_bias"):
        raise bad_request("logit_bias is not supported by this server", "logit_bias")
    response_format = body.get("response_format")
    if response_format is not None and (not isinstance(response_format, dict) or response_format.get("type") != "text"):
        raise bad_request("only response_format {'type': 'text'} is supported", "response_format")


def parse_chat_request(body: Any) -> ChatCompletionRequest:
    """Validate a decoded JSON body; raises `OpenAIError` (400) naming the first bad parameter."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model name (a string)", "model")
    conversation = _conversation(body.get("messages"))
    _reject_unsupported(body)
    max_tokens = _integer(body, "max_completion_tokens", 1, 1 << 30)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", 1, 1 << 30)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("stream must be a boolean", "stream")
    include_usage = False
    stream_options = body.get("stream_options")
    if stream_options is not None:
        if not stream:
            raise bad_request("stream_options is only allowed when stream is true", "stream_options")
        if not isinstance(stream_options, dict):
            raise bad_request("stream_options must be an object", "stream_options")
        include_usage = stream_options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise bad_request("include_usage must be a boolean", "stream_options.include_usage")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad_request("user must be a string", "user")
    n = _integer(body, "n", 1, MAX_CHOICES)
    condition = body.get("condition")
    if condition is not None and not isinstance(condition, str):
        raise bad_request("condition must be a string, e.g. \"GPT4\"", "condition")
    return ChatCompletionRequest(
        model=model,
        conversation=conversation,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        n=1 if n is None else n,
        stop=_stop(body.get("stop")),
        seed=_integer(body, "seed", -(1 << 63), (1 << 63) - 1),
        stream=stream,
        include_usage=include_usage,
        presence_penalty=_number(body, "presence_penalty", 0.0, -2.0, 2.0),
        frequency_penalty=_number(body, "frequency_penalty", 0.0, -2.0, 2.0),
        user=user,
        condition=condition,
    )


# -- responses ---------------------------------------------------------------------------------------


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_completion(completion_id: str, created: int, model: str, texts: list[str], finish_reasons: list[str],
                    prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": index, "message": {"role": "assistant", "content": text}, "logprobs": None,
             "finish_reason": finish_reason}
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
        head = json.dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model},
                          ensure_ascii=False)
        self._head = b"data: " + head[:-1].encode() + b', "choices": [{"index": '
        self._tail = b"}]" + (b', "usage": null' if include_usage else b"") + b"}\n\n"

    def encode(self, index: int, delta: dict, finish_reason: Optional[str] = None) -> bytes:
        return b"".join((self._head, str(index).encode(), b', "delta": ', json.dumps(delta, ensure_ascii=False).encode(),
                         b', "logprobs": null, "finish_reason": ', json.dumps(finish_reason).encode(), self._tail))


def usage_chunk(completion_id: str, created: int, model: str, prompt_tokens: int, completion_tokens: int) -> dict:
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage(prompt_tokens, completion_tokens)}


def model_card(model_id: str, created: int, condition: Optional[str] = None) -> dict:
    """OpenAI's model object; a conditioned (C-RLFT) model adds the condition requests get by default."""
    card = {"id": model_id, "object": "model", "created": created, "owned_by": "ochat"}
    if condition is not None:
        card["condition"] = condition
    return card


def model_list(model_ids: list[str], created: int, condition: Optional[str] = None) -> dict:
    return {"object": "list", "data": [model_card(model_id, created, condition) for model_id in model_ids]}
