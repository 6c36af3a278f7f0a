"""The DeepSpeed config a run uses: the file, checked, with "auto" values and the command-line settings filled in.

Checked before any process group exists, so a mistake is one line on stderr
instead of a hang or a traceback per rank:
- top-level keys DeepSpeed does not know: a near-miss of a known key (a typo
  such as `gradient_clipingg`) is refused with the likely intended key, any
  other unknown key is named in a warning (DeepSpeed itself ignores both);
- `optimizer` / `scheduler` sections (they come from the flags here);
- batch sizes that do not split over the ranks;
- offload settings that the ZeRO stage cannot honour.

Filled in: global batch, micro-batch and accumulation; bf16 on when a GPU is
present; the ZeRO stage (`--zero_stage`) and DeepSpeed's offload sections
(`--offload_optimizer cpu` -> `zero_optimization.offload_optimizer`,
`--offload_params cpu` -> `zero_optimization.offload_param`).
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import tempfile

OFFLOAD_CHOICES = ("none", "cpu")
DEFAULT_DEEPSPEED_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepspeed_config.json")

# Sections and switches DeepSpeed's config reader looks at (deepspeed.runtime.config), beyond the names
# in deepspeed.runtime.constants, which are added at run time.
KNOWN_SECTIONS = {
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "steps_per_print",
    "wall_clock_breakdown",
    "memory_breakdown",
    "zero_optimization",
    "bf16",
    "bfloat16",
    "fp16",
    "amp",
    "optimizer",
    "scheduler",
    "activation_checkpointing",
    "flops_profiler",
    "tensorboard",
    "wandb",
    "csv_monitor",
    "comet",
    "comms_logger",
    "monitor_config",
    "autotuning",
    "elasticity",
    "aio",
    "nebula",
    "checkpoint",
    "data_efficiency",
    "curriculum_learning",
    "compression_training",
    "sparse_attention",
    "pipeline",
    "progressive_layer_drop",
    "eigenvalue",
    "quantize_training",
    "hybrid_engine",
    "compile",
    "timers",
    "weight_quantization",
    "zero_allow_untested_optimizer",
    "zero_force_ds_cpu_optimizer",
    "sparse_gradients",
    "prescale_gradients",
    "gradient_predivide_factor",
    "communication_data_type",
    "dataloader_drop_last",
    "dump_state",
    "disable_allgather",
    "data_types",
    "torch_autocast",
    "graph_harvesting",
    "use_node_local_storage",
    "load_universal",
    "seq_parallel_communication_data_type",
    "tensor_parallel",
    "zero_optimization_stage",
    "train_batch_size_per_gpu",
    "vocabulary_size",
    "gradient_allreduce_op",
    "disable_python_gc",
    "use_data_before_expert_parallelism",
    "expert_parallel",
    "domino",
    "mics",
}


class TrainingSetupError(ValueError):
    """Bad arguments or inputs, found before any process group exists."""


def known_top_level_keys() -> set[str]:
    keys = set(KNOWN_SECTIONS)
    try:
        import deepspeed.runtime.constants as constants

        keys.update(
            value
            for name, value in vars(constants).items()
            if name.isupper() and isinstance(value, str) and value.isidentifier()
        )
    except ImportError:
        pass
    return keys


def check_top_level_keys(ds_config: dict, path: str) -> None:
    """Refuse a typo of a known key; warn about other keys DeepSpeed would silently ignore."""
    known = known_top_level_keys()
    for key in ds_config:
        if key in known:
            continue
        near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
        if near:
            raise TrainingSetupError(
                f"{path}: unknown key {key!r}; did you mean {near[0]!r}? (DeepSpeed would ignore it without a word)"
            )
        print(
            f"ochat.training_deepspeed.train: warning: {path}: key {key!r} is not a DeepSpeed setting "
            "and will be ignored",
            file=sys.stderr,
            flush=True,
        )


def check_save_path(save_path: str) -> None:
    """The output folder exists or can be made, and a file can be written there (before any model loads)."""
    try:
        os.makedirs(save_path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=save_path, prefix=".write_check_"):
            pass
    except OSError as error:
        raise TrainingSetupError(f"cannot write to --save_path {save_path!r}: {error.strerror or error}") from None


def resolve_deepspeed_config(path: str, args, world_size: int, on_cuda: bool) -> dict:
    """Read the DeepSpeed config and fill in batch sizes, precision, ZeRO stage and offload for this run."""
    try:
        with open(path, encoding="utf-8") as handle:
            ds_config = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise TrainingSetupError(f"cannot read the DeepSpeed config {path!r}: {error}") from None
    if not isinstance(ds_config, dict):
        raise TrainingSetupError(f"{path}: a DeepSpeed config is a JSON object")
    check_top_level_keys(ds_config, path)
    for key in ("optimizer", "scheduler"):
        if key in ds_config:
            raise TrainingSetupError(
                f"{path}: remove the {key!r} section; AdamW and the cosine schedule are set by flags (--lr ...)"
            )
    resolve_zero(ds_config, path, args, on_cuda)
    if getattr(args, "train_batch_size", None) is not None:
        ds_config["train_batch_size"] = args.train_batch_size
    if getattr(args, "micro_batch_size", None) is not None:
        ds_config["train_micro_batch_size_per_gpu"] = args.micro_batch_size
    global_batch = ds_config.get("train_batch_size", "auto")
    micro = ds_config.get("train_micro_batch_size_per_gpu", "auto")
    accumulation = ds_config.get("gradient_accumulation_steps", "auto")
    micro = 1 if micro == "auto" else int(micro)
    if global_batch == "auto":
        accumulation = 1 if accumulation == "auto" else int(accumulation)
        global_batch = micro * accumulation * world_size
    global_batch = int(global_batch)
    if accumulation == "auto":
        if global_batch % (micro * world_size):
            raise TrainingSetupError(
                f"global batch {global_batch} is not a multiple of micro-batch {micro} x {world_size} ranks; "
                "change train_batch_size or train_micro_batch_size_per_gpu (or --train_batch_size / --micro_batch_size)"
            )
        accumulation = global_batch // (micro * world_size)
    accumulation = int(accumulation)
    if micro * accumulation * world_size != global_batch:
        raise TrainingSetupError(
            f"train_batch_size {global_batch} != micro-batch {micro} x accumulation {accumulation} x {world_size} ranks"
        )
    ds_config.update(
        train_batch_size=global_batch, train_micro_batch_size_per_gpu=micro, gradient_accumulation_steps=accumulation
    )
    bf16 = dict(ds_config.get("bf16", {}))
    if bf16.get("enabled", "auto") == "auto":
        bf16["enabled"] = on_cuda
    ds_config["bf16"] = bf16
    if ds_config.get("fp16", {}).get("enabled") == "auto":
        ds_config["fp16"]["enabled"] = False
    if ds_config.get("gradient_clipping") == "auto":
        ds_config["gradient_clipping"] = 1.0
    return ds_config


def resolve_zero(ds_config: dict, path: str, args, on_cuda: bool) -> None:
    """ZeRO stage and offload sections from the flags (they override the file)."""
    zero = dict(ds_config.get("zero_optimization", {}))
    if getattr(args, "zero_stage", None) is not None:
        zero["stage"] = args.zero_stage
    stage = int(zero.get("stage", 0))
    if stage not in (0, 1, 2, 3):
        raise TrainingSetupError(f"{path}: ZeRO stage {stage} does not exist (0-3)")
    offload_optimizer = getattr(args, "offload_optimizer", "none")
    offload_params = getattr(args, "offload_params", "none")
    if offload_optimizer != "none":
        if stage < 1:
            raise TrainingSetupError("--offload_optimizer needs ZeRO stage 1, 2 or 3")
        zero["offload_optimizer"] = {"device": offload_optimizer, "pin_memory": on_cuda}
    if offload_params != "none":
        if stage != 3:
            raise TrainingSetupError(
                f"--offload_params needs ZeRO stage 3 (the config has stage {stage}); add --zero_stage 3"
            )
        zero["offload_param"] = {"device": offload_params, "pin_memory": on_cuda}
    if stage == 3:
        for key in ("allgather_bucket_size",):  # stage-2 settings that stage 3 names differently
            zero.pop(key, None)
        if getattr(args, "load_in_4bit", False):
            raise TrainingSetupError(
                "--load_in_4bit with ZeRO stage 3 is not supported: 4-bit weights cannot be "
                "partitioned; use ZeRO stage 2 (the 4-bit base is small)"
            )
    has_offload = zero.get("offload_optimizer", {}).get("device", "none") not in (None, "none")
    if has_offload and not on_cuda:
        # on CPU ranks the optimizer already runs in host memory; DeepSpeed's CPU Adam would need a compiled op
        ds_config["zero_force_ds_cpu_optimizer"] = False
    ds_config["zero_optimization"] = zero
