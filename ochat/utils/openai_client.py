"""One async client for every OpenAI-compatible endpoint the project talks to.

Answering models, baselines, judges and self-chat's dialogue writer are all reached through
`ChatClient`, so each can be GPT-4, a local ochat server, or any vLLM/FastChat server. The client
bounds concurrency (`--parallel`), retries 429 / 5xx / timeouts / dropped
connections with exponential backoff plus jitter (honouring `Retry-After`), treats an
HTTP 200 whose body is not a chat completion (HTML, plain text, bad JSON, no choices,
null content) as a failed attempt like a 5xx, and
`gather_with_progress` runs many requests under one tqdm bar.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Optional

import aiohttp
from tqdm.auto import tqdm

DEFAULT_API_BASE = "https://api.openai.com/v1"
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class ChatRequestError(RuntimeError):
    """A request that failed for good: a non-retryable status or retries exhausted.

    `status` is the HTTP status of a refused request (e.g. 400), None when retries ran out."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class MalformedReply(ValueError):
    """An HTTP 200 whose body is not a chat completion with text content."""


def add_client_args(parser: argparse.ArgumentParser, default_parallel: int = 8) -> None:
    """Adds the endpoint flags shared by every stage that calls an endpoint."""
    group = parser.add_argument_group("OpenAI-compatible endpoint")
    group.add_argument(
        "--api_base",
        dest="api_base",
        default=None,
        help=f"endpoint base URL, e.g. http://127.0.0.1:18888/v1 (default {DEFAULT_API_BASE})",
    )
    group.add_argument(
        "--api_key", dest="api_key", default=None, help="API key (default: the OPENAI_API_KEY environment variable)"
    )
    group.add_argument(
        "--parallel", type=int, default=default_parallel, help="most requests in flight at once (default %(default)s)"
    )
    group.add_argument(
        "--max_retries",
        type=int,
        default=6,
        help="retries of a request on 429, 5xx, timeouts and connection errors (default %(default)s)",
    )
    group.add_argument(
        "--retry_base_delay",
        type=float,
        default=1.0,
        help="first backoff delay in seconds; doubles each retry, plus jitter (default %(default)s)",
    )
    group.add_argument(
        "--max_retry_delay", type=float, default=60.0, help="longest backoff delay in seconds (default %(default)s)"
    )
    group.add_argument(
        "--request_timeout",
        type=float,
        default=600.0,
        help="seconds before one request is abandoned and retried (default %(default)s)",
    )


@dataclass
class ChatClient:
    """Bounded, retrying access to `POST {api_base}/chat/completions`."""

    api_base: str = DEFAULT_API_BASE
    api_key: Optional[str] = None
    parallel: int = 8
    max_retries: int = 6
    retry_base_delay: float = 1.0
    max_retry_delay: float = 60.0
    request_timeout: float = 600.0

    @classmethod
    def from_args(cls, args: argparse.Namespace, api_base: Optional[str] = None) -> ChatClient:
        return cls(
            api_base=api_base or args.api_base or DEFAULT_API_BASE,
            api_key=args.api_key or os.environ.get("OPENAI_API_KEY"),
            parallel=args.parallel,
            max_retries=args.max_retries,
            retry_base_delay=args.retry_base_delay,
            max_retry_delay=args.max_retry_delay,
            request_timeout=args.request_timeout,
        )

    def __post_init__(self):
        if self.parallel < 1:
            raise ValueError(f"--parallel must be at least 1, got {self.parallel}")
        self.api_base = self.api_base.rstrip("/")
        self._session: Optional[aiohttp.ClientSession] = None
        self._slots: Optional[asyncio.Semaphore] = None

    async def __aenter__(self) -> ChatClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        connector = aiohttp.TCPConnector(limit=self.parallel)
        self._session = aiohttp.ClientSession(headers=headers, connector=connector)
        self._slots = asyncio.Semaphore(self.parallel)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._session.close()

    async def list_models(self) -> list[str]:
        """Model ids the endpoint serves (`GET /models`)."""
        async with self._slots:
            async with self._session.get(
                f"{self.api_base}/models", timeout=aiohttp.ClientTimeout(total=self.request_timeout)
            ) as response:
                response.raise_for_status()
                body = await response.json()
        return [entry["id"] for entry in body.get("data", [])]

    async def chat(self, model: str, messages: list[dict], **params) -> str:
        """Returns the assistant text of one chat completion, retrying transient failures."""
        payload = {"model": model, "messages": messages, **{k: v for k, v in params.items() if v is not None}}
        attempt = 0
        while True:
            retry_after = None
            async with self._slots:
                try:
                    async with self._session.post(
                        f"{self.api_base}/chat/completions",
                        json=payload,
                        timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                    ) as response:
                        raw = await response.read()
                        if response.status == 200:
                            return completion_text(raw)
                        detail = raw[:500].decode("utf-8", "replace")
                        if response.status not in RETRYABLE_STATUS:
                            raise ChatRequestError(
                                f"HTTP {response.status} from {self.api_base}: {detail}", status=response.status
                            )
                        retry_after = _parse_retry_after(response.headers.get("Retry-After"))
                        failure = f"HTTP {response.status}: {detail}"
                except MalformedReply as error:
                    failure = f"HTTP 200 with a malformed body: {error}"
                except (asyncio.TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as error:
                    failure = f"{type(error).__name__}: {error}"
            if attempt >= self.max_retries:
                raise ChatRequestError(f"gave up after {attempt + 1} attempts at {self.api_base}: {failure}")
            await asyncio.sleep(self.backoff_delay(attempt, retry_after))
            attempt += 1

    def backoff_delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Full-jitter exponential backoff; a server's Retry-After is a floor, not a suggestion."""
        exponential = min(self.max_retry_delay, self.retry_base_delay * (2**attempt))
        delay = random.uniform(exponential / 2, exponential)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_delay))
        return delay


def completion_text(raw: bytes) -> str:
    """The assistant text of a chat-completion body; MalformedReply for anything else (HTML, text, bad JSON,
    no or empty `choices`, a null or non-text `content`), whatever the Content-Type says."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedReply(f"not JSON: {raw[:80]!r}") from None
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        raise MalformedReply("no choices in the reply")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise MalformedReply(f"choices[0].message.content is {type(content).__name__}, not text")
    return content


def _parse_retry_after(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date; rare from LLM APIs, and the exponential delay still applies


async def gather_with_progress(coroutines: Iterable[Awaitable], description: str) -> list:
    """Runs coroutines concurrently (the client bounds them) with a progress bar; results keep input order."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    with tqdm(total=len(tasks), desc=description, unit="call") as bar:
        for task in tasks:
            task.add_done_callback(lambda _: bar.update(1))
        try:
            return await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
