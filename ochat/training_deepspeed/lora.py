"""LoRA adapters through peft, with the added <|end_of_turn|> token still learning.

LoRA freezes the base model and trains low-rank updates of its linear layers
(by default every linear layer of attention and MLP: peft's "all-linear",
which leaves out the output layer). A frozen base would leave the EOT token,
added with a placeholder embedding (`ochat.models.add_eot_token`), untrained,
and the model would never learn to stop. So the EOT rows of the input
embedding and of the output layer are trainable too, through peft's
`trainable_token_indices`: it trains only those rows (a few thousand numbers)
where `modules_to_save` would train full copies of both matrices, each with
Adam state (for LLaMA-7B, 2 x 32000 x 4096 parameters, about 4 GB of extra
model state per rank); the measured difference on the tiny model is in
benchmarks/RESULTS.md.

Outputs of a LoRA run (see `train.py`): `SAVE_PATH/adapter/` (peft format:
`adapter_config.json`, `adapter_model.safetensors`; loads with
`PeftModel.from_pretrained(base, SAVE_PATH/adapter)`) and, in `SAVE_PATH/`
itself, the adapter merged into the base (`merge_and_unload`), an ordinary
Hugging Face checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from ochat.training_deepspeed.deepspeed_settings import TrainingSetupError

ADAPTER_DIR = "adapter"
DEFAULT_TARGET_MODULES = "all-linear"


@dataclass
class LoraSettings:
    rank: int
    alpha: float
    dropout: float
    target_modules: str  # "all-linear" or comma-separated module names

    def target_module_list(self):
        if self.target_modules == DEFAULT_TARGET_MODULES:
            return DEFAULT_TARGET_MODULES
        return [name.strip() for name in self.target_modules.split(",") if name.strip()]


def lora_settings(args) -> LoraSettings:
    return LoraSettings(
        rank=args.lora_rank, alpha=args.lora_alpha, dropout=args.lora_dropout, target_modules=args.lora_target_modules
    )


def check_lora_targets(hf_config, settings: LoraSettings) -> None:
    """Every --lora_target_modules name is a module of the model, checked on an empty (meta) copy of it."""
    targets = settings.target_module_list()
    if targets == DEFAULT_TARGET_MODULES:
        return
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    names = [name for name, _ in model.named_modules()]
    missing = [target for target in targets if not any(name == target or name.endswith("." + target) for name in names)]
    if missing or not targets:
        short_names = sorted(
            {name.rsplit(".", 1)[-1] for name in names if name and not name.rsplit(".", 1)[-1].isdigit()}
        )
        raise TrainingSetupError(
            f"--lora_target_modules: {', '.join(missing) or '(none given)'} is not a module of this "
            f"{hf_config.model_type} model; its modules: {', '.join(short_names)}"
        )


def check_4bit_available() -> None:
    """QLoRA needs CUDA and bitsandbytes; say so before anything loads."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise TrainingSetupError(
            "--load_in_4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit kernels do not run on "
            "this machine's CPU; drop --load_in_4bit to train LoRA on the full-precision base"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainingSetupError(
            "--load_in_4bit needs bitsandbytes: pip install bitsandbytes (or the project's gpu extra)"
        )


def module_name(model, module) -> str:
    """The short name peft matches (`embed_tokens`, `lm_head`, `wte`) of a submodule."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name.rsplit(".", 1)[-1]
    raise ValueError(f"module {module} is not part of the model")


def trainable_token_modules(model, token_ids: list[int]) -> dict[str, list[int]]:
    """Input embedding and (when not tied to it) output layer, each with the rows that must learn."""
    modules = {module_name(model, model.get_input_embeddings()): list(token_ids)}
    output = model.get_output_embeddings()
    if output is not None and output.weight is not model.get_input_embeddings().weight:
        modules[module_name(model, output)] = list(token_ids)
    return modules


def apply_lora(
    model,
    settings: LoraSettings,
    trainable_token_ids: list[int],
    quantized: bool = False,
    gradient_checkpointing: bool = True,
):
    """The peft model: LoRA on the target linears, the given token rows trainable, everything else frozen."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_module_list(),
        trainable_token_indices=trainable_token_modules(model, trainable_token_ids),
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as error:  # e.g. a --lora_target_modules name the model does not have
        raise ValueError(f"cannot apply LoRA: {error}") from None


def trainable_parameter_count(model) -> tuple[int, int]:
    """(trainable, all) parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
