"""Convert clean conversations into tokenized training samples for one model type.

    python -m data_pipeline.generate_dataset --model-type openchat --model-path llama-13b-eot \
        --in-file sharegpt_gpt4.json --out-dir data

--in-file is clean ShareGPT JSON or conversation JSONL (detected; see
`data_pipeline.conversations`). Conditioned (C-RLFT) model types render each
conversation under its `condition` (the type's inference condition when it has
none) and keep the item weights; a condition that is not text makes the
conversation invalid (counted in the report). Other types ignore conditions and
refuse data whose answers weigh other than 1.0, which they would train at 1.0.

Writes, into --out-dir:

    T.train.json, T.eval.json            [[token_ids, supervise_mask], ...]
                                         e.g. [[[1, 910, 29901, 2048, ...], [false, false, false, false, ...]]]
                                         conditioned types: [[token_ids, supervise_mask, weights], ...], the
                                         weights nonzero exactly where the mask is true, e.g. [..., [0.0, 0.1, 0.1]]
    T.train.text.json, T.eval.text.json  ["<s>Human: Hi<|end_of_turn|>Assistant: Hello<|end_of_turn|>", ...]
    T.report.json                        what was truncated, split and dropped, and the tokens kept

The split into train and eval is by conversation (seeded), before any
splitting of long conversations, so no conversation feeds both sides.

Fitting a conversation into the context (`--truncation`):

    turn (default)  keep the longest run of whole turns that fits and ends with an
                    assistant turn: no answer loses its <|end_of_turn|>, no
                    unsupervised tail is kept. A first exchange that alone exceeds
                    the context is dropped and counted.
    tail            the original's raw cut at the context length; samples left with
                    no supervised token (they give a NaN loss) are dropped and counted.

`--check_only` checks the model type and folder (known type, `config.json` of
the type's architecture, a tokenizer with the EOT token) and writes nothing:
run_data_pipeline.sh runs it before any stage. Outputs are written atomically;
the previous run's outputs are removed first, so a failed run leaves none of
them beside newer inputs.

`--split-long` turns a conversation longer than the context into several
samples of whole rounds (human + assistant), each with BOS (and the system turn,
if any), so later turns are trained on instead of thrown away.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Sequence

from data_pipeline.conversations import read_conversations
from data_pipeline.tokenized_samples import ConversionStats, convert_conversations, sample_record
from ochat.config import ModelConfig, get_model_config, load_tokenizer
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_json_atomic

TRUNCATION_MODES = ("turn", "tail")


def check_weights_fit_type(config: ModelConfig, conversations: Sequence[dict]) -> None:
    """An unconditioned type trains every answer at weight 1.0: refuse data whose answers weigh otherwise.

    (A GPT-3.5 answer of C-RLFT data, weight 0.1, would silently train as hard as a GPT-4 one.)
    """
    if config.is_conditioned:
        return
    weighted = [
        conversation.get("id", f"conversation {number}")
        for number, conversation in enumerate(conversations, 1)
        if isinstance(conversation, dict)
        and isinstance(conversation.get("items"), list)
        and any(
            isinstance(item, dict) and item.get("from") == "gpt" and item.get("weight", 1.0) != 1.0
            for item in conversation["items"]
        )
    ]
    if weighted:
        raise ValueError(
            f"{len(weighted)} conversation(s) (first: {weighted[0]!r}) weigh answers other than 1.0, but model type "
            f"{config.name} takes no condition and would train them at 1.0; use a conditioned type "
            "(e.g. openchat_v3.2) or data without weights"
        )


def split_train_eval(conversations: list, eval_ratio: float, seed: int) -> tuple[list, list]:
    """Seeded split by conversation; at least one eval conversation when there are two or more and the ratio is set."""
    order = list(range(len(conversations)))
    random.Random(seed).shuffle(order)
    eval_count = round(len(conversations) * eval_ratio)
    if eval_ratio > 0 and eval_count == 0 and len(conversations) >= 2:
        eval_count = 1
    eval_indices = set(order[:eval_count])
    train = [c for i, c in enumerate(conversations) if i not in eval_indices]
    evaluation = [c for i, c in enumerate(conversations) if i in eval_indices]
    return train, evaluation


def generate_dataset(
    model_type: str,
    model_path: str,
    in_file: str,
    out_dir: str,
    eval_ratio: float = 0.01,
    seed: int = 42,
    truncation: str = "turn",
    split_long: bool = False,
) -> dict:
    config = get_model_config(model_type)
    if truncation not in TRUNCATION_MODES:
        raise ValueError(f"truncation must be one of {TRUNCATION_MODES}")
    if not os.path.isfile(in_file):
        raise FileNotFoundError(f"input file {in_file!r} does not exist")
    conversations, in_format = read_conversations(in_file)
    check_weights_fit_type(config, conversations)
    tokenizer = check_model_path(config, model_path)

    os.makedirs(out_dir, exist_ok=True)
    outputs = output_paths(out_dir, model_type)
    remove_files(outputs)  # the last run's files must not outlive a failure of this one
    try:
        report = _convert_and_write(
            config,
            tokenizer,
            conversations,
            out_dir,
            model_type,
            model_path,
            in_file,
            eval_ratio,
            seed,
            truncation,
            split_long,
            in_format,
        )
    except BaseException:
        remove_files(outputs)
        raise
    return report


def _convert_and_write(
    config,
    tokenizer,
    conversations,
    out_dir,
    model_type,
    model_path,
    in_file,
    eval_ratio,
    seed,
    truncation,
    split_long,
    in_format="sharegpt_json",
) -> dict:
    report = {
        "model_type": model_type,
        "model_path": model_path,
        "in_file": in_file,
        "max_context": config.max_context,
        "truncation": truncation,
        "split_long": split_long,
        "eval_ratio": eval_ratio,
        "seed": seed,
        "in_format": in_format,
        "conditions": condition_counts(config, conversations),
    }
    for split_name, split_conversations in zip(("train", "eval"), split_train_eval(conversations, eval_ratio, seed)):
        stats = ConversionStats()
        samples = convert_conversations(config, tokenizer, split_conversations, truncation, split_long, stats)
        texts = tokenizer.hf_tokenizer.batch_decode([sample.token_ids for sample in samples], skip_special_tokens=False)
        records = [sample_record(sample, config.is_conditioned) for sample in samples]
        write_json_atomic(os.path.join(out_dir, f"{model_type}.{split_name}.json"), records, indent=None)
        write_json_atomic(os.path.join(out_dir, f"{model_type}.{split_name}.text.json"), texts, indent=None)
        report[split_name] = stats.as_dict()
    write_json_atomic(os.path.join(out_dir, f"{model_type}.report.json"), report, indent=None)
    return report


def condition_counts(config: ModelConfig, conversations: Sequence[dict]) -> dict:
    """Conversations per condition as rendered; an unconditioned type reports the conditions it ignores."""
    counts: dict = {}
    for conversation in conversations:
        condition = conversation.get("condition") if isinstance(conversation, dict) else None
        if config.is_conditioned and condition is None:
            condition = config.inference_condition
        if condition is not None:
            counts[condition] = counts.get(condition, 0) + 1
    return counts if config.is_conditioned else {"ignored (model type takes no condition)": counts} if counts else {}


def output_paths(out_dir: str, model_type: str) -> list[str]:
    names = [f"{model_type}.{split}{kind}.json" for split in ("train", "eval") for kind in ("", ".text")]
    return [os.path.join(out_dir, name) for name in names + [f"{model_type}.report.json"]]


def remove_files(paths: Sequence[str]) -> None:
    for path in paths:
        if os.path.isfile(path) or os.path.islink(path):
            os.unlink(path)


def check_model_path(config: ModelConfig, model_path: str):
    """The folder's tokenizer, once the folder is known to suit the model type; a ValueError says what is wrong.

    Checked before any data is read or written: a Hugging Face folder
    (`config.json`) of the type's architecture, a tokenizer in it, the EOT token.
    """
    if config.uses_checkpoint_template:
        raise ValueError(
            f"model type {config.name} serves a checkpoint's own chat template; training data is converted "
            "with a registry template: add the EOT token for one (e.g. --model_type openchat) and convert for it"
        )
    if not os.path.isdir(model_path):
        raise ValueError(f"model path {model_path!r} is not a folder")
    config_path = os.path.join(model_path, "config.json")
    try:
        with open(config_path, encoding="utf-8") as handle:
            architecture = json.load(handle).get("model_type")
    except FileNotFoundError:
        raise ValueError(f"{model_path} is not a Hugging Face model folder (no config.json)") from None
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"cannot read {config_path}: {error}") from None
    if architecture != config.architecture:
        raise ValueError(
            f"model type {config.name} needs a {config.architecture} model, but {model_path} holds a "
            f"{architecture} model (config.json model_type); pick the model type that matches the folder"
        )
    if not any(os.path.isfile(os.path.join(model_path, name)) for name in TOKENIZER_FILES):
        raise ValueError(f"{model_path} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    try:
        tokenizer = load_tokenizer(config, model_path)
    except (OSError, ValueError, ImportError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "install" in first_line.lower():  # transformers blames a library for files it cannot read
            present = [name for name in TOKENIZER_FILES if os.path.isfile(os.path.join(model_path, name))]
            first_line = f"its tokenizer files ({', '.join(present)}) are unreadable or incomplete"
        raise ValueError(f"cannot load the tokenizer in {model_path}: {first_line}") from None
    tokenizer.eot_token_id  # noqa: B018  (raises a clear ValueError when the EOT token is missing)
    tokenizer.bos_token_id  # noqa: B018  (and when BOS maps to the unknown token)
    return tokenizer


# Files of which one makes a folder hold a tokenizer that transformers can load.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def print_summary(report: dict, out_dir: str) -> None:
    model_type = report["model_type"]
    if report.get("conditions"):
        print(f"{model_type}: {report['in_format']} input; conversations per condition: {report['conditions']}")
    for split_name in ("train", "eval"):
        stats = report[split_name]
        print(
            f"{model_type}.{split_name}: {stats['conversations']} conversations -> {stats['samples']} samples "
            f"({stats['truncated']} truncated, {stats['split_conversations']} split into {stats['split_samples']}, "
            f"{stats['dropped_first_exchange_too_long']} dropped: first exchange too long, "
            f"{stats['dropped_no_supervised_tokens']} dropped: nothing supervised, {len(stats['invalid'])} invalid); "
            f"tokens kept {stats['tokens_kept']}/{stats['tokens_total']}, "
            f"supervised kept {stats['supervised_kept']}/{stats['supervised_total']}"
        )
    print(f"written to {out_dir}/{model_type}.{{train,eval}}{{,.text}}.json and {model_type}.report.json")


def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_type", required=True, help="registry model type, e.g. openchat or openchat_tiny")
    parser.add_argument("--model_path", help="model folder whose tokenizer has <|end_of_turn|> (required to convert)")
    parser.add_argument(
        "--in_file",
        help="clean conversations JSON (e.g. sharegpt_gpt4.json) or conversation JSONL "
        "(e.g. sharegpt_crlft.jsonl from filter_sharegpt --mode c-rlft)",
    )
    parser.add_argument("--out_dir", help="folder for T.{train,eval}[.text].json and T.report.json")
    parser.add_argument(
        "--check_only",
        action="store_true",
        help="only check the model type and model folder (architecture, tokenizer, EOT); write nothing",
    )
    parser.add_argument("--eval_ratio", type=float, default=0.01, help="share of conversations held out (default 0.01)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the train/eval split")
    parser.add_argument(
        "--truncation",
        choices=TRUNCATION_MODES,
        default="turn",
        help="turn: cut at the last whole assistant turn (default); tail: the original's raw cut",
    )
    parser.add_argument(
        "--split_long",
        action="store_true",
        help="split conversations longer than the context into several samples of whole rounds",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.eval_ratio < 1:
        parser.error("--eval_ratio must be in [0, 1)")
    if args.check_only:
        try:
            config = get_model_config(args.model_type)
            if args.model_path is not None:
                check_model_path(config, args.model_path)
        except ValueError as error:
            sys.exit(f"generate_dataset: {error}")
        print(f"{args.model_type}: " + (f"{args.model_path} is usable" if args.model_path else "known model type"))
        return
    missing = [name for name in ("model_path", "in_file", "out_dir") if getattr(args, name) is None]
    if missing:
        parser.error("the following arguments are required: " + ", ".join("--" + name for name in missing))
    try:
        report = generate_dataset(
            args.model_type,
            args.model_path,
            args.in_file,
            args.out_dir,
            args.eval_ratio,
            args.seed,
            args.truncation,
            args.split_long,
        )
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"generate_dataset: {error}")
    except OSError as error:
        sys.exit(f"generate_dataset: cannot write to {args.out_dir}: {error.strerror or error}")
    print_summary(report, args.out_dir)


if __name__ == "__main__":
    main()
