"""OpenAI ChatCompletions requests: typed request models and the one error builder.

Nothing here touches the model or aiohttp. A request body (raw bytes) is
parsed and validated in one pass by pydantic's Rust core into a
`ChatCompletionRequest`, or becomes an `OpenAIError` naming the offending
`param`. Hostile bodies (a lone surrogate escape, integers of thousands of
digits, JSON nested hundreds deep, unhashable roles) fail in that pass as
invalid JSON or a bad parameter, never deeper in the server. Errors have
OpenAI's shape; responses and stream chunks are built in `responses.py`.

    error:  {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": null}}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

# OpenAI role -> registry conversation role; "developer" is OpenAI's newer name for a system message.
ROLE_TO_TEMPLATE = {"system": "system", "developer": "system", "user": "human", "assistant": "gpt"}
MAX_STOP_SEQUENCES = 4
MAX_CHOICES = 16
MAX_TOP_LOGPROBS = 20


class OpenAIError(Exception):
    """An error the client should see, with its HTTP status and OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        param: Optional[str] = None,
        error_type: Optional[str] = None,
        code: Optional[str] = None,
        headers: Optional[dict] = None,
    ):
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
    return {401: "authentication_error", 429: "rate_limit_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )


def error_body(
    message: str, error_type: str = "invalid_request_error", param: Optional[str] = None, code: Optional[str] = None
) -> dict:
    """The one place OpenAI's error JSON is built; every handler, middleware and stream uses it."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


# -- requests ------------------------------------------------------------------------------------------


def _join_text_parts(content: Any) -> Any:
    """Message content may be OpenAI's multi-part form; only text parts are supported."""
    if not isinstance(content, list):
        return content
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ValueError("only text content parts ({'type': 'text', 'text': ...}) are supported")
        texts.append(part["text"])
    return "".join(texts)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[Optional[str], BeforeValidator(_join_text_parts)] = None

    @model_validator(mode="after")
    def _content_present(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":
            raise ValueError("content must be a string or a list of text parts")
        return self


class StreamOptions(_Strict):
    include_usage: bool = False


class JsonSchema(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: Optional[str] = None
    schema_: dict = Field(default_factory=dict, alias="schema")
    strict: Optional[bool] = None


class TextFormat(_Strict):
    type: Literal["text"]


class JsonObjectFormat(_Strict):
    type: Literal["json_object"]


class JsonSchemaFormat(_Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = Annotated[Union[TextFormat, JsonObjectFormat, JsonSchemaFormat], Field(discriminator="type")]
Stop = Annotated[
    Optional[list[str]],
    BeforeValidator(lambda value: [value] if isinstance(value, str) else value),
    Field(max_length=MAX_STOP_SEQUENCES),
]


class ChatCompletionRequest(_Strict):
    """A validated request. Sampling fields left out are None; the service fills in the server's defaults."""

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: Optional[int] = Field(None, ge=1, le=1 << 30)
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=1 << 30)
    temperature: Optional[float] = Field(None, ge=0.0, le=2.0)
    top_p: Optional[float] = Field(None, ge=0.0, le=1.0)
    n: Optional[int] = Field(None, ge=1, le=MAX_CHOICES)
    stop: Stop = None
    seed: Optional[int] = Field(None, ge=-(1 << 63), le=(1 << 63) - 1)
    stream: Optional[bool] = None
    stream_options: Optional[StreamOptions] = None
    presence_penalty: Optional[float] = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: Optional[float] = Field(None, ge=-2.0, le=2.0)
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: Optional[ResponseFormat] = None
    user: Optional[str] = None
    condition: Optional[str] = None  # C-RLFT condition (an extra body field); None: the server's default
    # Refused when set, rather than silently ignored: they would change what the answer means.
    tools: Optional[Any] = None
    functions: Optional[Any] = None
    logit_bias: Optional[Any] = None

    @property
    def conversation(self) -> list[dict]:
        """The messages in the registry's items form."""
        return [{"from": ROLE_TO_TEMPLATE[m.role], "value": m.content or ""} for m in self.messages]

    @property
    def choices(self) -> int:
        return self.n or 1

    @property
    def completion_limit(self) -> Optional[int]:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_sequences(self) -> list[str]:
        return list(self.stop or [])

    @property
    def streaming(self) -> bool:
        return bool(self.stream)

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def response_format_dict(self) -> Optional[dict]:
        """The format for the engine (OpenAI's dict); None for free text."""
        if self.response_format is None or self.response_format.type == "text":
            return None
        return self.response_format.model_dump(by_alias=True, exclude_none=True)


def parse_chat_request(raw: bytes) -> ChatCompletionRequest:
    """Parse and validate a request body; raises `OpenAIError` (400) naming the first bad parameter."""
    try:
        request = ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as error:
        raise _bad_request(error.errors(include_input=False, include_url=False)[0]) from None
    for name in ("tools", "functions", "logit_bias"):
        if getattr(request, name):
            what = "function calling" if name != "logit_bias" else "token biases"
            raise OpenAIError(400, f"{name} ({what}) is not supported by this server", param=name)
    if request.stream_options is not None and not request.streaming:
        raise OpenAIError(400, "stream_options is only allowed when stream is true", param="stream_options")
    if request.top_logprobs and not request.logprobs:
        raise OpenAIError(400, "top_logprobs requires logprobs to be true", param="top_logprobs")
    if any(stop == "" for stop in request.stop_sequences):
        raise OpenAIError(400, "stop sequences must not be empty", param="stop")
    return request


def _bad_request(detail: dict) -> OpenAIError:
    """OpenAI's 400 for pydantic's first error; the message never repeats the input."""
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "json_invalid":
        return OpenAIError(
            400, f"The request body is not valid JSON: {message.removeprefix('Invalid JSON: ')}", code="invalid_json"
        )
    location = detail["loc"]
    if not location:
        return OpenAIError(400, f"The request body must be a JSON object: {message}")
    if location[0] == "response_format":  # the union's member names are not parameters
        param = "response_format"
    else:
        param = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    return OpenAIError(400, f"Invalid value for '{param}': {message}", param=param)
