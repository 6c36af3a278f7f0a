"""The tiny chat model every CPU run starts from: a tiny base built on the spot, then `<|end_of_turn|>` added.

The demo, the tests and the benchmarks all need the same two folders; this
builds them once into a work folder and reuses them when they are complete.

    base_dir, model_dir = prepare_tiny_chat_model("openchat_tiny", "work/")
    python -m ochat.models.tiny_chat_model --model_type openchat_tiny --work_dir work/   # prints work/eot
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from ochat.utils.cli import ArgumentParser


def prepare_tiny_chat_model(model_type: str, work_dir: str, rebuild: bool = False) -> tuple[str, str]:
    """(`work_dir/base`, `work_dir/eot`): the tiny base model and the same model with the EOT token.

    Each step runs as `python -m ...` in a child process, exactly the commands a user types, into
    a `.partial` folder renamed when the step succeeds, so an existing folder is always complete
    and is reused.
    """
    base_dir, model_dir = os.path.join(work_dir, "base"), os.path.join(work_dir, "eot")
    steps = (
        (base_dir, ["ochat.models.build_tiny", "--model_type", model_type, "--out"]),
        (model_dir, ["ochat.models.add_eot_token", "--model_type", model_type, "--in", base_dir, "--out"]),
    )
    for folder, command in steps:
        if os.path.isdir(folder) and not rebuild:
            continue
        partial = folder + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        result = subprocess.run([sys.executable, "-m", *command, partial], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"python -m {' '.join(command)} {partial} failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
            )
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
        rebuild = True  # a rebuilt base invalidates the EOT model made from it
    return base_dir, model_dir


def main(argv=None) -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--model_type", default="openchat_tiny", help="a *_tiny registry type (default: %(default)s)")
    parser.add_argument("--work_dir", required=True, help="folder for base/ and eot/ (reused when complete)")
    parser.add_argument("--rebuild", action="store_true", help="build both folders again even if present")
    args = parser.parse_args(argv)
    try:
        _, model_dir = prepare_tiny_chat_model(args.model_type, args.work_dir, args.rebuild)
    except RuntimeError as error:
        raise SystemExit(f"error: {error}") from None
    print(model_dir)


if __name__ == "__main__":
    main()
