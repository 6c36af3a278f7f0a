"""The judge core every judging mode runs on: a request type, one runner, one call log behind `--continue`.

A mode (`openai_eval` for Vicuna-style pairwise scores, `mt_bench` for single ratings and
pairwise games, `alpaca_eval` for preferences) only builds `JudgeRequest`s and reduces the
recorded calls into its result file; asking, parsing (`evaluation.verdicts`), re-asking an
unreadable reply, structured output with its fallback, logging and resuming happen here,
the same way for all of them.

The call log (`*.calls.jsonl` beside the mode's result file) gets one line per finished
call, appended and handed to the OS as the call returns (fsynced every half second), so a
killed run loses only the calls in flight. `--continue` reads it and asks only the calls it
lacks or holds as transport failures; a reply that never parsed stays failed. A last line
cut short by a kill is dropped. One line:

    {"key": ["mine", 1, "model_first", 0], "kind": "score_pair", "text": "... \\n8 7", "verdict": [8.0, 7.0],
     "failed": false, "error": null, "judge": "gpt-4", "attempts": 1, "structured": false, "tstamp": 1700000000.0,
     "content_sha256": "5d41...2a"}

`verdict` is the parsed value in the kind's JSON form (see `evaluation.verdicts`), null when
the call failed; `error` holds the transport error of a call that never got a reply.
`content_sha256` is the hash of what the judge was shown (model, messages, kind): when the
answers or the prompt changed since, `--continue` asks that call again instead of pairing
the new text with an old verdict. A verdict that is not one of its kind (a hand-edited
line) is refused with the file and line.

With `structured=True` the judge is sent the kind's JSON schema as `response_format` and an
instruction to answer in that JSON, explanation first. A server that refuses it with HTTP 400
switches the run to free-text prompts and parsing, with one warning.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from evaluation.verdicts import VERDICT_KINDS, VerdictKind
from ochat.utils import append_log
from ochat.utils.openai_client import ChatClient, ChatRequestError, add_client_args, gather_with_progress


@dataclass(frozen=True)
class JudgeRequest:
    """One judge call: `key` names it in the call log (JSON scalars), `kind` the verdict it asks for."""

    key: tuple
    messages: list
    kind: str
    model: str
    temperature: float = 0.0
    max_tokens: int = 1024
    seed: Optional[int] = None

    def content_sha256(self) -> str:
        """What the judge is shown; a recorded call answers this request only when it matches."""
        shown = json.dumps([self.model, self.kind, self.messages], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(shown.encode("utf-8", "surrogatepass")).hexdigest()


def add_judge_model_argument(parser: argparse.ArgumentParser) -> None:
    """`--judge_model` (or `--model`), for the modes whose judge is named on the command line rather than in a
    reviewer file."""
    parser.add_argument(
        "--judge_model",
        "--model",
        dest="judge_model",
        default="gpt-4",
        help="judge model id at the endpoint (default %(default)s)",
    )


def add_judge_arguments(parser: argparse.ArgumentParser, parse_retries: int = 2) -> None:
    """The flags every judging mode shares: how verdicts are asked for and resumed, then the judge endpoint's."""
    group = parser.add_argument_group("judging")
    group.add_argument(
        "--parse_retries",
        type=int,
        default=parse_retries,
        help="times an unreadable verdict is asked again before it counts as failed (default %(default)s)",
    )
    group.add_argument(
        "--structured",
        action="store_true",
        help="ask for the verdict as JSON through response_format json_schema, explanation first; "
        "a server that refuses response_format (HTTP 400) falls back to free text",
    )
    group.add_argument(
        "--max_explanation_chars",
        type=int,
        default=None,
        help="with --structured: longest explanation the schema allows (maxLength), so a model that "
        "rambles still reaches its verdict within --max_tokens (default: unbounded)",
    )
    group.add_argument(
        "--continue",
        dest="resume",
        action="store_true",
        help="resume an interrupted run: keep the calls in the call log, ask only the missing ones",
    )
    group.add_argument("--overwrite", action="store_true", help="discard the call log and judge again")
    add_client_args(parser, default_parallel=16)


def check_judge_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses, as argparse refuses a bad flag, judge flags that exclude each other."""
    if args.resume and args.overwrite:
        parser.error("--continue and --overwrite exclude each other")


class CallLog(append_log.CallLog):
    """The judge's call log: `ochat.utils.append_log.CallLog` whose recorded verdicts are checked as it is read."""

    def __init__(self, path: Path, resume: bool = False, overwrite: bool = False):
        super().__init__(path, resume, overwrite, check_call=check_verdict)


def read_call_log(path: Path) -> list[dict]:
    """The calls in a judge's log; refuses a file that is not a call log, and a verdict that is not of its kind."""
    return append_log.read_call_log(path, check_call=check_verdict)


def check_verdict(path: Path, number: int, call: dict) -> None:
    """Refuses a recorded verdict that is not one of its kind (a hand-edited line)."""
    kind = VERDICT_KINDS.get(call.get("kind")) if "kind" in call else None
    if (
        kind is not None
        and not call.get("failed")
        and not call.get("error")
        and not kind.valid_verdict(call.get("verdict"))
    ):
        raise SystemExit(
            f"{path}:{number}: verdict {json.dumps(call.get('verdict'))[:80]} is not a {call['kind']} verdict; "
            "fix the line, or pass --overwrite to judge again"
        )


class Judge:
    """Asks the judge, parses, re-asks unreadable replies; structured output with a one-time fallback."""

    def __init__(
        self,
        client: ChatClient,
        parse_retries: int = 2,
        structured: bool = False,
        max_explanation_chars: Optional[int] = None,
    ):
        self.client, self.parse_retries, self.structured = client, parse_retries, structured
        self.max_explanation_chars = max_explanation_chars
        self._structured_confirmed = False
        self._probe = asyncio.Lock()  # the first structured call runs alone: a refusal then costs one request

    async def ask(self, request: JudgeRequest) -> dict:
        kind = VERDICT_KINDS[request.kind]
        reply, verdict, error, attempts, structured = None, None, None, 0, self.structured
        try:
            for _ in range(self.parse_retries + 1):
                attempts += 1
                reply, structured = await self._chat(request, kind)
                verdict = kind.parse(reply, structured)
                if verdict is not None:
                    break
        except ChatRequestError as failure:
            error = str(failure)
        return {
            "key": list(request.key),
            "kind": request.kind,
            "text": reply,
            "verdict": _jsonable(verdict),
            "failed": verdict is None,
            "error": error,
            "judge": request.model,
            "attempts": attempts,
            "structured": structured,
            "tstamp": time.time(),
            "content_sha256": request.content_sha256(),
        }

    async def _chat(self, request: JudgeRequest, kind: VerdictKind) -> tuple[str, bool]:
        if self.structured and not self._structured_confirmed:
            async with self._probe:
                if self.structured and not self._structured_confirmed:
                    return await self._probe_structured(request, kind)
        if self.structured:
            return await self._send(request, kind, structured=True), True
        return await self._send(request, kind, structured=False), False

    async def _probe_structured(self, request: JudgeRequest, kind: VerdictKind) -> tuple[str, bool]:
        """The run's first structured call: HTTP 400 means the server lacks response_format, so fall back."""
        try:
            reply = await self._send(request, kind, structured=True)
        except ChatRequestError as error:
            if error.status != 400:
                raise
            self.structured = False
            print(
                f"warning: the judge refused response_format (HTTP 400: {str(error)[:200]}); "
                "falling back to free-text verdicts for the rest of the run",
                file=sys.stderr,
            )
            return await self._send(request, kind, structured=False), False
        self._structured_confirmed = True
        return reply, True

    async def _send(self, request: JudgeRequest, kind: VerdictKind, structured: bool) -> str:
        params = {"temperature": request.temperature, "max_tokens": request.max_tokens, "seed": request.seed}
        if structured:
            return await self.client.chat(
                request.model,
                with_instruction(request.messages, kind.instruction),
                response_format=kind.response_format(self.max_explanation_chars),
                **params,
            )
        return await self.client.chat(request.model, request.messages, **params)


def judge_from_args(client: ChatClient, args) -> Judge:
    return Judge(
        client,
        parse_retries=args.parse_retries,
        structured=args.structured,
        max_explanation_chars=args.max_explanation_chars,
    )


def with_instruction(messages: list[dict], instruction: str) -> list[dict]:
    """The messages with the JSON instruction appended to the last user message."""
    last_user = max(index for index, message in enumerate(messages) if message["role"] == "user")
    return [
        dict(message, content=message["content"] + "\n\n" + instruction) if index == last_user else message
        for index, message in enumerate(messages)
    ]


def _jsonable(verdict: Any) -> Any:
    return list(verdict) if isinstance(verdict, tuple) else verdict


async def run_judgements(requests: Iterable[JudgeRequest], log: CallLog, judge: Judge, description: str) -> None:
    """Asks every request the log still needs, concurrently (the client bounds it), recording each as it ends."""
    pending = [request for request in requests if log.needs(request.key, request.content_sha256())]
    if not pending:
        print("every judge call is already recorded; rebuilding the results only", file=sys.stderr)
        return

    async def one(request: JudgeRequest) -> None:
        call = await judge.ask(request)
        if call["error"]:
            print(f"judge call {call['key']} failed: {call['error'][:300]}", file=sys.stderr)
        log.record(call)

    await gather_with_progress([one(request) for request in pending], description)


def report_outcome(calls: list[dict]) -> None:
    """Warns with the failure rate; exits non-zero when no call gave a verdict (judge down, nothing parseable)."""
    failed = sum(call["failed"] for call in calls)
    transport = sum(bool(call.get("error")) for call in calls)
    if calls and failed == len(calls):
        raise SystemExit(
            f"error: none of {len(calls)} judge calls gave a verdict ({transport} never got a reply, "
            f"{failed - transport} unreadable); check the endpoint and --model, then run again "
            "with --continue"
        )
    if failed:
        print(
            f"warning: {failed} of {len(calls)} judge calls failed ({100 * failed / len(calls):.1f}%; "
            f"{transport} without a reply, {failed - transport} unreadable) and are left out"
            + ("; run again with --continue to ask the unanswered ones" if transport else ""),
            file=sys.stderr,
        )
