"""The real server for the tests: started on a free loopback port with the tiny model, spoken to in raw bytes,
aiohttp or server-sent events, and the plain `model.generate` answers greedy serving must reproduce."""

from __future__ import annotations

import json
import os
import re
import socket

import aiohttp
import torch

from ochat.config import get_model_config, load_tokenizer, render_conversation
from ochat.models import load_model
from ochat.serving.protocol import ROLE_TO_TEMPLATE
from ochat.utils.net import free_port
from ochat.utils.server_process import ServerProcess
from tests.helpers.repo import TINY_MODEL_TYPE

MODEL_TYPE = TINY_MODEL_TYPE
ERROR_FIELDS = {"message", "type", "param", "code"}


def launch_server(model_dir: str, work_dir, *extra_args: str) -> ServerProcess:
    """Start the server on a free port with its request log in `work_dir` (not yet waiting for it)."""
    port = free_port()
    logfile = os.path.join(str(work_dir), f"requests-{port}.log")
    server = ServerProcess.launch(
        MODEL_TYPE,
        model_dir,
        "--logfile",
        logfile,
        "--ray_num_cpus",
        "2",
        *extra_args,
        port=port,
        log_path=os.path.join(str(work_dir), f"server-{port}.out"),
    )
    server.logfile = logfile
    return server


def log_lines(server: ServerProcess) -> list[dict]:
    """The server's JSON request log, one dict per request."""
    with open(server.logfile) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def start_server(model_dir: str, work_dir, *extra_args: str) -> ServerProcess:
    return launch_server(model_dir, work_dir, *extra_args).wait_healthy(timeout=180)


def generate_reference(model_dir: str):
    """Plain transformers `generate` on registry-rendered prompts: what greedy serving must reproduce."""
    config = get_model_config(MODEL_TYPE)
    tokenizer = load_tokenizer(config, model_dir)
    model = load_model(config, model_dir).eval()

    class Reference:
        def prompt_ids(self, messages):
            items = [{"from": ROLE_TO_TEMPLATE[m["role"]], "value": m["content"]} for m in messages]
            return render_conversation(config, tokenizer, items, add_generation_prompt=True).token_ids

        def greedy(self, messages, max_tokens):
            prompt = self.prompt_ids(messages)
            with torch.inference_mode():
                output = model.generate(
                    torch.tensor([prompt]),
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    eos_token_id=tokenizer.stop_token_ids,
                    pad_token_id=tokenizer.hf_tokenizer.pad_token_id,
                )
            generated = output[0, len(prompt) :].tolist()
            return tokenizer.decode(generated, skip_special_tokens=True), len(generated)

    reference = Reference()
    reference.config, reference.tokenizer, reference.model = config, tokenizer, model
    return reference


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def post(server: ServerProcess, body, path="/v1/chat/completions", headers=None, raw: bytes = None):
    async with aiohttp.ClientSession() as session:
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        async with session.post(server.base_url + path, data=data, headers=headers) as response:
            return response.status, dict(response.headers), await response.read()


async def read_events(response) -> list:
    events = []
    async for line in response.content:
        line = line.strip()
        if line.startswith(b"data: "):
            payload = line[len(b"data: ") :]
            events.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return events


async def stream(server: ServerProcess, body: dict) -> list:
    async with aiohttp.ClientSession() as session:
        async with session.post(server.base_url + "/v1/chat/completions", json={**body, "stream": True}) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/event-stream")
            return await read_events(response)


def raw_exchange(server, request: bytes, wait: float = 10) -> bytes:
    """Send bytes on a fresh connection and read one response (headers and a Content-Length body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as connection:
        connection.sendall(request)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
                head, separator, body = received.partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                if separator and length and len(body) >= int(length.group(1)):
                    break
        except TimeoutError:
            pass
        return received


def engine_worker_pids(server_pid: int) -> list[int]:
    """Ray engine actor processes started (through the raylet) by the server process."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    names[int(entry)] = handle.read().decode(errors="replace")
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    found, stack = [], [server_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            stack.append(child)
            if names.get(child, "").startswith("ray::EngineWorker"):
                found.append(child)
    return found
