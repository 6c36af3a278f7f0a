"""Resume checkpoints: DeepSpeed's own (weights, optimizer, schedule, step) every `--save_every` steps, and the
run signature that refuses a resume with settings that would change the schedule, the data order or what the
checkpoint holds.

    SAVE_PATH/checkpoints/latest                          the newest tag, written by DeepSpeed
    SAVE_PATH/checkpoints/step_N/run_signature.json       read by the next --resume before anything loads
"""

from __future__ import annotations

import json
import os
import shutil

from ochat.training_deepspeed.deepspeed_settings import TrainingSetupError

CHECKPOINT_DIR = "checkpoints"
RUN_SIGNATURE_FILE = "run_signature.json"  # in each checkpoint's folder, read before anything loads


def run_signature(args, ds_config: dict, world_size: int, train_samples: int, total_steps: int) -> dict:
    """What must not change between a run and its resume: the schedule, the data order, and what the
    checkpoint's weights and optimizer state fit (model, ranks, ZeRO partitioning, LoRA layout)."""
    return {
        "train_samples": train_samples,
        "train_batch_size": ds_config["train_batch_size"],
        "world_size": world_size,
        "gradient_accumulation_steps": ds_config["gradient_accumulation_steps"],
        "grouping": "packing" if args.packing else "length" if args.length_grouping else "none",
        "seed": args.seed,
        "total_steps": total_steps,
        "loss_reduction": args.loss_reduction,
        "model_type": args.model_type,
        "model_path": os.path.realpath(args.model_path),
        "zero_stage": int(ds_config.get("zero_optimization", {}).get("stage", 0)),
        "lora_rank": args.lora_rank,
        "lora_alpha": args.lora_alpha if args.lora_rank else None,
        "lora_dropout": args.lora_dropout if args.lora_rank else None,
        "lora_target_modules": args.lora_target_modules if args.lora_rank else None,
        "load_in_4bit": args.load_in_4bit,
    }


def signature_differences(saved: dict, current: dict) -> str:
    """`key: checkpoint X, now Y` for every setting of `saved` that `current` changes ('' when none)."""
    saved = {"lora_rank": 0, **saved}  # checkpoints from before LoRA existed
    return ", ".join(
        f"{key}: checkpoint {saved[key]!r}, now {current.get(key)!r}"
        for key in saved
        if key in current and saved[key] != current[key]
    )


def latest_checkpoint(checkpoint_dir: str) -> str | None:
    """The folder of the newest checkpoint DeepSpeed names in `latest`, or None when there is none yet."""
    try:
        with open(os.path.join(checkpoint_dir, "latest"), encoding="utf-8") as handle:
            tag = handle.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise TrainingSetupError(f"cannot read {checkpoint_dir}/latest: {error.strerror or error}") from None
    return os.path.join(checkpoint_dir, tag)


def check_resume_signature(checkpoint_dir: str, signature: dict) -> None:
    """Refuse, before any process group starts, a resume whose settings differ from its checkpoint's."""
    path = latest_checkpoint(checkpoint_dir)
    if path is None:
        return
    try:
        with open(os.path.join(path, RUN_SIGNATURE_FILE), encoding="utf-8") as handle:
            saved = json.load(handle)
    except FileNotFoundError:  # written by an older version: the checkpoint's own copy is checked on load
        return
    except (OSError, ValueError) as error:
        raise TrainingSetupError(f"cannot read {path}/{RUN_SIGNATURE_FILE}: {error}") from None
    differences = signature_differences(saved, signature) if isinstance(saved, dict) else "unreadable signature"
    if differences:
        raise TrainingSetupError(
            f"cannot resume {path} with different settings ({differences}); resume with the checkpoint's settings, "
            "or start a new run in another --save_path"
        )


def load_latest_checkpoint(engine, args, signature: dict, log) -> int:
    """The optimizer step the latest checkpoint in SAVE_PATH/checkpoints reached (0 when there is none yet),
    loaded into `engine`."""
    checkpoint_dir = os.path.join(args.save_path, CHECKPOINT_DIR)
    if not os.path.isfile(os.path.join(checkpoint_dir, "latest")):
        log(f"--resume: no checkpoint in {checkpoint_dir} yet, starting from the beginning")
        return 0
    # LoRA checkpoints hold only the trainable weights; the frozen base comes from --model_path
    path, client_state = engine.load_checkpoint(checkpoint_dir, load_module_strict=not args.lora_rank)
    if path is None:
        raise RuntimeError(f"could not load the latest checkpoint from {checkpoint_dir}")
    details = signature_differences(client_state.get("run_signature", {}), signature)
    if details:
        raise RuntimeError(f"cannot resume {path} with different settings ({details})")
    global_step = client_state["global_step"]
    log(f"resumed from {path} at optimizer step {global_step}")
    return global_step


def save_checkpoint(engine, args, global_step: int, signature: dict, rank: int, log) -> None:
    """Every rank writes its part of `step_N`; rank 0 adds the signature and keeps the newest
    `--keep_checkpoints`."""
    import torch.distributed as dist

    checkpoint_dir = os.path.join(args.save_path, CHECKPOINT_DIR)
    keep = args.keep_checkpoints
    tag = f"step_{global_step}"
    engine.save_checkpoint(
        checkpoint_dir,
        tag=tag,
        client_state={"global_step": global_step, "run_signature": signature},
        exclude_frozen_parameters=bool(args.lora_rank),
    )
    if rank == 0:  # read by the next --resume before anything loads
        from ochat.utils.files import write_json_atomic

        write_json_atomic(os.path.join(checkpoint_dir, tag, RUN_SIGNATURE_FILE), signature)
    dist.barrier()
    if rank == 0:
        steps = sorted(
            int(name[len("step_") :])
            for name in os.listdir(checkpoint_dir)
            if name.startswith("step_") and name[len("step_") :].isdigit()
        )
        for old in steps[:-keep] if keep > 0 else []:
            shutil.rmtree(os.path.join(checkpoint_dir, f"step_{old}"), ignore_errors=True)
    log(f"checkpoint {tag} written to {checkpoint_dir}")
