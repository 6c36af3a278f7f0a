"""A model replica: the generation engine on its own thread (`EngineLoop`) and the Ray actor body that serves it
(`EngineWorker`).

The engine itself (continuous batching under a KV budget, preemption, sampling) is
`ochat.serving.engine`; `ochat.serving.kv_cache` holds the cache layout and the
budget's size, `ochat.serving.structured` the grammar-constrained decoding for `response_format`.

What crosses Ray, both ways, is the pure-Python types of `ochat.serving.engine_types`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Sequence
from typing import Optional

import torch

from ochat.serving.engine import GenerationEngine
from ochat.serving.engine_types import EngineError, FinishReason, ReplicaLimits, SamplingParams, TokenEvent

logger = logging.getLogger(__name__)
# What clients hear of the replica's own failures; the tracebacks stay in its log.
ADD_FAILED = "the engine could not take this request"
STEP_FAILED = "the model failed while running a batch step"


class EngineLoop:
    """Runs a `GenerationEngine` on its own thread; submits, aborts and polls are thread-safe.

    The thread steps while there is work and sleeps on a condition otherwise, so
    the model's forward never blocks the caller's event loop. Events gather in
    an outbox that `take_events` / `wait_events` drain all at once (one round trip
    serves every sequence that advanced).
    """

    def __init__(self, engine: GenerationEngine):
        self.engine = engine
        self._inbox: list[tuple] = []
        self._outbox: list[TokenEvent] = []
        self._lock = threading.Condition()
        self._listeners: list = []  # callables run on the engine thread after events land
        self._stopped = False
        self.steps = 0
        self.thread = threading.Thread(target=self._run, name="generation-engine", daemon=True)
        self.thread.start()

    def submit(self, seq_id: str, prompt_ids: Sequence[int], params: SamplingParams) -> None:
        with self._lock:
            self._inbox.append(("add", seq_id, list(prompt_ids), params))
            self._lock.notify()

    def abort(self, seq_ids: Sequence[str]) -> None:
        with self._lock:
            self._inbox.extend(("abort", seq_id) for seq_id in seq_ids)
            self._lock.notify()

    def has_events(self) -> bool:
        with self._lock:
            return bool(self._outbox)

    def take_events(self) -> list[TokenEvent]:
        with self._lock:
            events, self._outbox = self._outbox, []
        return events

    def add_listener(self, callback) -> None:
        """Run `callback()` on the engine thread whenever new events land (it must not block)."""
        self._listeners.append(callback)

    async def wait_events(self, timeout: float) -> list[TokenEvent]:
        """Every event since the last take; waits up to `timeout` seconds for the first without blocking the
        running asyncio loop. Meant for one waiter at a time (the replica's poller)."""
        ready = asyncio.Event()
        event_loop = asyncio.get_running_loop()

        def wake():
            event_loop.call_soon_threadsafe(ready.set)

        self.add_listener(wake)
        try:
            if not self.has_events():
                try:
                    await asyncio.wait_for(ready.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._listeners.remove(wake)
        return self.take_events()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        engine = self.engine
        while True:
            with self._lock:
                while not self._stopped and not self._inbox and not engine.has_work():
                    self._lock.wait()
                if self._stopped:
                    return
                inbox, self._inbox = self._inbox, []
            events: list[TokenEvent] = []
            for message in inbox:
                if message[0] == "add":
                    _, seq_id, prompt_ids, params = message
                    try:
                        engine.add(seq_id, prompt_ids, params)
                    except ValueError as error:  # our own checks: the message is about this request alone
                        events.append(failed_event(seq_id, EngineError(str(error), "invalid_request")))
                    except Exception:  # e.g. a grammar library failing: this request fails, not the thread
                        logger.exception("adding %s failed", seq_id)
                        events.append(failed_event(seq_id, EngineError(ADD_FAILED)))
                else:
                    engine.abort(message[1])
            try:
                events += engine.step()
            except Exception:  # a failed forward ends every sequence it touched, not the server
                logger.exception("engine step failed")
                events += engine.fail_all(STEP_FAILED)
            self.steps += 1
            if events:
                with self._lock:
                    self._outbox.extend(events)
                for listener in list(self._listeners):
                    listener()


class EngineWorker:
    """The Ray actor body: loads one model replica and serves `submit_many` / `abort` / `poll`.

    Wrapped with `ray.remote` by `engine_actor_class()`; it can also be used in
    process, which is what tests of the engine alone do.
    """

    def __init__(
        self,
        model_type: str,
        model_path: str,
        max_batch_size: int = 32,
        device: str = "auto",
        dtype: Optional[str] = None,
        torch_threads: Optional[int] = None,
        kv_cache_tokens: Optional[int] = None,
        gpu_memory_utilization: float = 0.9,
        adapter_path: Optional[str] = None,
    ):
        from ochat.config import get_model_config, load_tokenizer
        from ochat.models import load_model

        if torch_threads:
            torch.set_num_threads(torch_threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        config = get_model_config(model_type, model_path)
        tokenizer = load_tokenizer(config, model_path)
        torch_dtype = getattr(torch, dtype) if dtype else None
        load_kwargs = {}
        if adapter_path is not None:
            if "adapter_path" not in inspect.signature(load_model).parameters:
                raise ValueError(
                    "adapter_path is not supported: this version of ochat.models.load_model cannot "
                    "apply a LoRA adapter; merge the adapter into the model folder instead"
                )
            load_kwargs["adapter_path"] = adapter_path
        model = load_model(config, model_path, dtype=torch_dtype, device=device, **load_kwargs).eval()
        engine = GenerationEngine(
            model,
            tokenizer.stop_token_ids,
            config.max_context,
            max_batch_size,
            kv_cache_tokens=kv_cache_tokens,
            gpu_memory_utilization=gpu_memory_utilization,
            tokenizer=tokenizer.hf_tokenizer,
        )
        self.limits = engine.limits
        logger.info(
            "replica on %s: weights %.3f GiB, KV cache budget %d tokens (%.3f GiB, %d bytes a token)",
            engine.device,
            self.limits.weights_gib,
            engine.budget_tokens,
            self.limits.kv_cache_gib,
            self.limits.kv_bytes_per_token,
        )
        self.loop = EngineLoop(engine)

    async def ready(self) -> ReplicaLimits:
        return self.limits

    async def metrics(self) -> dict:
        return self.loop.engine.metrics()

    async def submit_many(self, requests: list[tuple[str, list[int], SamplingParams]]) -> None:
        for seq_id, prompt_ids, params in requests:
            self.loop.submit(seq_id, prompt_ids, params)

    async def abort(self, seq_ids: list[str]) -> None:
        self.loop.abort(seq_ids)

    async def poll(self, timeout: float = 5.0) -> list[TokenEvent]:
        """Every event since the last poll; waits up to `timeout` seconds for the first one."""
        return await self.loop.wait_events(timeout)


def failed_event(seq_id: str, error: EngineError) -> TokenEvent:
    return TokenEvent(seq_id, None, FinishReason.ERROR, error=error)


def engine_actor_class(num_cpus: float = 1, num_gpus: float = 0):
    """`EngineWorker` as a Ray actor class with the given resources."""
    import ray

    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_concurrency=64)(EngineWorker)
