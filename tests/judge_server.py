"""A scripted OpenAI-compatible chat server: the judge (and answering model) for evaluation tests.

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

Run alone (for benchmarks): `python tests/judge_server.py --port 18999 --latency 0.2`.
"""

from __future__ import annotations

import asyncio
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

    def order_of(self, content: str) -> str:
        if not self.baseline:
            return "none"
        baseline_positions = set(_all_positions(content, f"Answer from {self.baseline}:"))
        model_positions = [p for p in _all_positions(content, "Answer from ") if p not in baseline_positions]
        if not baseline_positions or not model_positions:
            return "none"
        return "baseline_first" if min(baseline_positions) < min(model_positions) else "model_first"

    def next_step(self, content: str, seed) -> tuple[Optional[int], str, dict]:
        order = self.order_of(content)
        for index, rule in enumerate(self.script):
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
        if self.latency:
            await asyncio.sleep(self.latency)
        if model != self.judge_model:
            self.requests.append((model, None, "answer", body.get("seed"), "reply"))
            return completion(model, f"Answer from {model}: {user_text}")
        prompt = "\n".join(m.get("content", "") for m in messages)
        rule, order, step = self.next_step(prompt, body.get("seed"))
        kind = "status" if "status" in step else "sleep" if "sleep" in step else "reply"
        self.requests.append((model, rule, order, body.get("seed"), kind))
        if "status" in step:
            headers = {"Retry-After": str(step["retry_after"])} if "retry_after" in step else {}
            return web.json_response({"error": {"message": "scripted failure", "type": "server_error",
                                                "code": step["status"]}}, status=step["status"], headers=headers)
        if "sleep" in step:
            await asyncio.sleep(step["sleep"])
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


def _all_positions(text: str, needle: str) -> list[int]:
    positions, start = [], text.find(needle)
    while start >= 0:
        positions.append(start)
        start = text.find(needle, start + 1)
    return positions


def completion(model: str, text: str) -> web.Response:
    return web.json_response({
        "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})


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
    args = parser.parse_args()
    web.run_app(ScriptedJudge(latency=args.latency).app(), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
