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
MAX_LOGIT_BIAS_ENTRIES = 1024
# Top-level fields this server does not implement but that cannot change an answer, so they pass; any other
# field not modelled below is a 400 naming it, as OpenAI answers an unrecognized argument.
HARMLESS_FIELDS = frozenset(
    {"metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier", "prediction"}
)
# Fields that only make sense beside `tools` / `functions`, which this server refuses.
TOOL_FIELDS = {"tool_choice": "tools", "parallel_tool_calls": "tools", "function_call": "functions"}


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
    Optional[Annotated[list[str], Field(max_length=MAX_STOP_SEQUENCES)]],
    BeforeValidator(lambda value: [value] if isinstance(value, str) else value),
]
LogitBias = Annotated[
    dict[Annotated[str, Field(pattern=r"^[0-9]{1,9}$")], Annotated[float, Field(ge=-100.0, le=100.0)]],
    Field(max_length=MAX_LOGIT_BIAS_ENTRIES),
]


class ChatCompletionRequest(_Strict):
    """A validated request. Sampling fields left out are None; the service fills in the server's defaults.
    Fields not modelled here are kept aside (`model_extra`) to be refused unless harmless."""

    model_config = ConfigDict(extra="allow")

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
    logit_bias: Optional[LogitBias] = None  # {"token id": bias in [-100, 100]}
    modalities: Optional[list[str]] = None  # only ["text"]
    condition: Optional[str] = None  # C-RLFT condition (an extra body field); None: the server's default
    # Refused when set, rather than silently ignored: they would change what the answer means.
    tools: Optional[Any] = None
    functions: Optional[Any] = None

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
    def token_biases(self) -> Optional[dict[int, float]]:
        return {int(token): bias for token, bias in self.logit_bias.items()} if self.logit_bias else None

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
    except (TypeError, ValueError, RecursionError):  # a validator tripping over a value it did not foresee
        raise OpenAIError(400, "The request body could not be validated", code="invalid_request") from None
    refuse_unsupported_fields(request)
    if request.stream_options is not None and not request.streaming:
        raise OpenAIError(400, "stream_options is only allowed when stream is true", param="stream_options")
    if request.top_logprobs and not request.logprobs:
        raise OpenAIError(400, "top_logprobs requires logprobs to be true", param="top_logprobs")
    if any(stop == "" for stop in request.stop_sequences):
        raise OpenAIError(400, "stop sequences must not be empty", param="stop")
    return request


def refuse_unsupported_fields(request: ChatCompletionRequest) -> None:
    """A 400 naming the first field this server would otherwise ignore although it changes the answer."""
    for name in ("tools", "functions"):
        if getattr(request, name):
            raise OpenAIError(
                400,
                f"{name} (function calling) is not supported by this server",
                param=name,
                code="unsupported_parameter",
            )
    extra = request.model_extra or {}
    for name, needs in TOOL_FIELDS.items():
        if extra.get(name) is not None:
            raise OpenAIError(
                400,
                f"Invalid value for '{name}': '{name}' is only allowed when '{needs}' are specified.",
                param=name,
                code="unsupported_parameter",
            )
    if request.modalities is not None and request.modalities != ["text"]:
        raise OpenAIError(
            400,
            "Only the 'text' modality is supported by this server",
            param="modalities",
            code="unsupported_parameter",
        )
    for name, value in extra.items():
        if name not in HARMLESS_FIELDS and name not in TOOL_FIELDS and value is not None:
            shown = name if len(name) <= 64 and name.isprintable() else name[:64].encode("unicode_escape").decode()
            raise OpenAIError(
                400, f"Unrecognized request argument supplied: {shown}", param=shown, code="unknown_parameter"
            )


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
    if location[0] in ("response_format", "logit_bias"):  # union members and map keys are not parameters
        param = location[0]
    else:
        param = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    return OpenAIError(400, f"Invalid value for '{param}': {message}", param=param)
