"""Step 4: the OpenAI-compatible server on the trained checkpoint, one streamed chat completion through the official
client; and, for --base smollm2, the base model as shipped served beside it."""

from __future__ import annotations

from ochat.demo_steps.run import REPO_ROOT, Demo, StepFailed
from ochat.utils.net import free_port, port_in_use
from ochat.utils.server_process import ServerProcess, ServerStartError


def step_serve(demo: Demo) -> str:
    port = demo.args.port or free_port()
    if port_in_use(port):
        raise StepFailed(f"port {port} is already in use; stop what listens there or pass --port 0")
    print(
        f"   $ python -m ochat.serving.openai_api_server --model_type {demo.model_type} "
        f"--model_path {demo.checkpoint_dir} --host 127.0.0.1 --port {port}",
        flush=True,
    )
    try:
        demo.server = ServerProcess.start(
            demo.model_type,
            demo.checkpoint_dir,
            port=port,
            cwd=REPO_ROOT,
            log_path=demo.path("logs", "server.log"),
            timeout=300,
        )
    except ServerStartError as error:
        raise StepFailed(str(error)) from None
    demo.server_url = demo.server.base_url
    print(f"   server up at {demo.server_url}/v1 (chat page: {demo.server_url}/)")
    from openai import OpenAI

    client = OpenAI(base_url=demo.server_url + "/v1", api_key="none")
    question = "What is the capital of France?"
    print(f"   user> {question}\n   assistant> ", end="", flush=True)
    stream = client.chat.completions.create(
        model=demo.model_type,
        messages=[{"role": "user", "content": question}],
        stream=True,
        max_tokens=48,
        temperature=0.7,
        seed=0,
    )
    pieces = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()
    return f"server at {demo.server_url}/v1 streamed {len(''.join(pieces))} characters"


def start_reference_server(demo: Demo) -> None:
    """SmolLM2 as shipped, served with its own chat template (`hf_chat`), beside the trained model."""
    try:
        demo.reference = ServerProcess.start(
            "hf_chat",
            demo.base_dir,
            port=free_port(),
            cwd=REPO_ROOT,
            log_path=demo.path("logs", "reference_server.log"),
            timeout=300,
        )
    except ServerStartError as error:
        raise StepFailed(f"the reference server (SmolLM2 as shipped) did not start: {error}") from None
    print(f"   reference server (SmolLM2 as shipped, hf_chat) at {demo.reference.api_base}")
