"""The one command line that starts a training run: DeepSpeed's launcher on N ranks (CPU ranks without a GPU)
running `ochat.training_deepspeed.train`, e.g.

    deepspeed --num_gpus=2 --master_port 29517 --module ochat.training_deepspeed.train \\
        --model_type openchat --model_path base --data_path data --save_path out --epochs 5 ... \\
        --deepspeed --deepspeed_config ochat/training_deepspeed/deepspeed_config.json

The demo, the benchmarks and the tests build their runs with `deepspeed_command`; run it from the repository root.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Optional

from ochat.training_deepspeed.deepspeed_settings import DEFAULT_DEEPSPEED_CONFIG
from ochat.utils.net import free_port


def deepspeed_command(
    num_ranks: int,
    model_type: str,
    model_path: str,
    data_path: str,
    save_path: str,
    extra_args: Sequence[str] = (),
    epochs: Optional[int] = None,
    deepspeed_config: str = DEFAULT_DEEPSPEED_CONFIG,
    master_port: Optional[int] = None,
) -> list[str]:
    """The argv of one run; `extra_args` are further training flags, `epochs` None keeps the trainer's default,
    and the rendezvous port is a free one unless given (several runs may share the machine)."""
    launcher = os.path.join(os.path.dirname(sys.executable), "deepspeed")
    launcher = [launcher] if os.path.exists(launcher) else [sys.executable, "-m", "deepspeed.launcher.runner"]
    return [
        *launcher,
        f"--num_gpus={num_ranks}",
        "--master_port",
        str(master_port if master_port is not None else free_port()),
        "--module",
        "ochat.training_deepspeed.train",
        "--model_type",
        model_type,
        "--model_path",
        model_path,
        "--data_path",
        data_path,
        "--save_path",
        save_path,
        *(["--epochs", str(epochs)] if epochs is not None else []),
        *extra_args,
        "--deepspeed",
        "--deepspeed_config",
        deepspeed_config,
    ]
