"""A scripted OpenAI-compatible chat server: the judge (and answering model) for evaluation tests and benchmarks.

It judges without a model, so the evaluation stages can be checked and timed against a real HTTP endpoint.

It is a real aiohttp server on a loopback port speaking `POST /v1/chat/completions`,
`GET /v1/models` and `GET /health`. Requests for the judge model (`judge_model`,
default "judge") follow a script; requests for any other model are answered
"Answer from MODEL: LAST_USER_MESSAGE", which lets the judge tell the answers apart.

A script is a list of rules. The first rule whose `match` text occurs in the judge
request's user message applies; its `steps` are served one per request for each
(rule, order, seed), the last step repeating. The order is "baseline_first" when the
baseline's answer appears before any other answer in the prompt, else "model_first"
(or "none" for single-answer prompts). A rule with a "seed" applies only to requests with that seed:

    {"match": "[q2]", "model_first": [{"status": 429, "retry_after": 0.05}, {"reply": "...\\n8 7"}],
     "baseline_first": [{"sleep": 5}, {"reply": "Scores: 9 6"}]}

A step is {"reply": text}, {"status": 429 | 500 | ..., "retry_after": seconds}, or
{"sleep": seconds} (hold the request, then reply with its "reply" or the default).
Judge requests no rule matches get `default_reply`. `latency` delays every reply.

Structured output: a request carrying `response_format` is answered with a step's "json"
(serialized) when the step has one, else with its "reply" text as is (a server that ignores the
schema); with `reject_response_format=True` every such request gets HTTP 400, as a server
without structured output answers. Broken 200s: {"raw": text, "content_type": "text/html"}
sends that body with status 200; {"body": {...}} sends that JSON object (e.g. no `choices`).
A rule with a "model" applies to answering requests for that model instead of the judge's.
Every request body is kept in `bodies`.

Run alone (for benchmarks): `python -m evaluation.scripted_judge --port 18999 --latency 0.2`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from aiohttp import web

from ochat.utils.cli import ArgumentParser

DEFAULT_REPLY = "Both answers address the question; the first is a little more complete.\n[8, 7]"


@dataclass
class ScriptedJudge:
    script: list = field(default_factory=list)
    baseline: Optional[str] = None
    judge_model: str = "judge"
    default_reply: str = DEFAULT_REPLY
    latency: float = 0.0
    requests: list = field(default_factory=list)  # (model, rule index or None, order, seed, step kind)
    served: Counter = field(default_factory=Counter)  # (rule, order, seed) -> requests served
    reject_response_format: bool = False
    bodies: list = field(default_factory=list)

    def order_of(self, content: str) -> str:
        if not self.baseline:
            return "none"
        baseline_positions = set(_all_positions(content, f"Answer from {self.baseline}:"))
        model_positions = [p for p in _all_positions(content, "Answer from ") if p not in baseline_positions]
        if not baseline_positions or not model_positions:
            return "none"
        return "baseline_first" if min(baseline_positions) < min(model_positions) else "model_first"

    def next_step(self, content: str, seed, model: Optional[str] = None) -> tuple[Optional[int], str, dict]:
        order = self.order_of(content)
        for index, rule in enumerate(self.script):
            if rule.get("model", self.judge_model) != (model or self.judge_model):
                continue
            if rule["match"] in content and rule.get("seed", seed) == seed:
                steps = rule.get(order) or rule.get("steps") or [{"reply": self.default_reply}]
                key = (index, order, seed)
                step = steps[min(self.served[key], len(steps) - 1)]
                self.served[key] += 1
                return index, order, step
        return None, order, {"reply": self.default_reply}

    async def chat_completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = body.get("model", "")
        messages = body.get("messages", [])
        user_text = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        self.bodies.append(body)
        if self.latency:
            await asyncio.sleep(self.latency)
        if model != self.judge_model:
            rule, _, step = self.next_step(user_text, body.get("seed"), model)
            if rule is None:
                self.requests.append((model, None, "answer", body.get("seed"), "reply"))
                return completion(model, f"Answer from {model}: {user_text}")
            self.requests.append((model, rule, "answer", body.get("seed"), step_kind(step)))
            return await self.serve_step(model, step, body)
        if self.reject_response_format and "response_format" in body:
            self.requests.append(
                (
                    model,
                    None,
                    self.order_of("\n".join(m.get("content", "") for m in messages)),
                    body.get("seed"),
                    "status",
                )
            )
            return web.json_response(
                {
                    "error": {
                        "message": "response_format is not supported",
                        "type": "invalid_request_error",
                        "param": "response_format",
                        "code": None,
                    }
                },
                status=400,
            )
        prompt = "\n".join(m.get("content", "") for m in messages)
        rule, order, step = self.next_step(prompt, body.get("seed"))
        self.requests.append((model, rule, order, body.get("seed"), step_kind(step)))
        return await self.serve_step(model, step, body)

    async def serve_step(self, model: str, step: dict, body: dict) -> web.Response:
        if "status" in step:
            headers = {"Retry-After": str(step["retry_after"])} if "retry_after" in step else {}
            return web.json_response(
                {"error": {"message": "scripted failure", "type": "server_error", "code": step["status"]}},
                status=step["status"],
                headers=headers,
            )
        if "sleep" in step:
            await asyncio.sleep(step["sleep"])
        if "raw" in step:
            return web.Response(status=200, text=step["raw"], content_type=step.get("content_type", "text/plain"))
        if "body" in step:
            return web.json_response(step["body"])
        if "response_format" in body and "json" in step:
            return completion(model, json.dumps(step["json"]))
        return completion(model, step.get("reply", self.default_reply))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        return app

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.judge_model, "object": "model"}]})

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def judge_requests(self) -> list:
        return [entry for entry in self.requests if entry[2] != "answer"]


def step_kind(step: dict) -> str:
    return "status" if "status" in step else "sleep" if "sleep" in step else "reply"


def _all_positions(text: str, needle: str) -> list[int]:
    positions, start = [], text.find(needle)
    while start >= 0:
        positions.append(start)
        start = text.find(needle, start + 1)
    return positions


def completion(model: str, text: str) -> web.Response:
    return web.json_response(
        {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
    )


class RunningServer:
    """A ScriptedJudge served from a background thread; `url` is the /v1 base."""

    def __init__(self, judge: ScriptedJudge, port: int = 0):
        self.judge = judge
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(port,), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted judge server did not start")

    def _serve(self, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.judge.app(), access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        async def shutdown():
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def main() -> None:
    parser = ArgumentParser(description="Scripted OpenAI-compatible judge server for tests and benchmarks.")
    parser.add_argument("--port", type=int, default=18999)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every reply is held")
    parser.add_argument("--script", default=None, help="a JSON file holding the script (a list of rules)")
    parser.add_argument("--baseline", default=None, help="the baseline model's name, to tell answer orders apart")
    parser.add_argument(
        "--reject_response_format", action="store_true", help="answer HTTP 400 to requests carrying response_format"
    )
    args = parser.parse_args()
    script = json.loads(open(args.script, encoding="utf-8").read()) if args.script else []
    judge = ScriptedJudge(
        script=script, baseline=args.baseline, latency=args.latency, reject_response_format=args.reject_response_format
    )
    web.run_app(judge.app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
