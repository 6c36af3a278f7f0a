"""Training samples: reading and checking the data files, and collation into model inputs.

Input (written by `data_pipeline.generate_dataset`): a JSON list of samples,
each `[token_ids, supervise_mask]` of equal length, e.g.

    [[[1, 12, 7, 2049, 40, 9, 2049], [false, false, false, false, false, true, true]]]

or, for conditioned (C-RLFT) data, `[token_ids, supervise_mask, weights]` with
per-token weights (the source's reward) nonzero exactly where the mask is true:

    [[[1, 12, 7, 2049, 40, 9, 2049], [false, false, false, false, false, true, true],
      [0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.1]]]

Each optimizer step's plan (`ochat.training_deepspeed.batch_plan`) deals
sample indices to ranks and micro-batches; `collate` turns one micro-batch into
model inputs and gives every target token its share of the step's loss
(`ochat.training_deepspeed.loss`), so samples keep their weights through length
grouping and packing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Optional

import torch

from ochat.config.conversation_template import Sample
from ochat.training_deepspeed.batch_plan import StepPlan
from ochat.training_deepspeed.loss import IGNORE_INDEX, loss_weights


class DataError(ValueError):
    """Training data that cannot be used as it is; the message says what to do."""


def resolve_data_files(data_path: str, model_type: str) -> tuple[str, Optional[str]]:
    """`(train_file, eval_file or None)` from a folder holding T.train.json or a direct path to it."""
    if os.path.isdir(data_path):
        train_file = os.path.join(data_path, f"{model_type}.train.json")
    else:
        train_file = data_path
    if not os.path.isfile(train_file):
        raise DataError(
            f"training data {train_file!r} not found; --data_path must be the folder holding "
            f"{model_type}.train.json (made by data_pipeline.generate_dataset) or that file itself"
        )
    eval_file = os.path.join(os.path.dirname(train_file), f"{model_type}.eval.json")
    if train_file.endswith(".train.json"):
        eval_file = train_file[: -len(".train.json")] + ".eval.json"
    return train_file, eval_file if os.path.isfile(eval_file) else None


def load_samples(path: str, vocab_size: int, max_context: int) -> list[Sample]:
    """Read and check one data file: shape, token ids within the vocabulary, lengths within the context.

    Each sample's per-token `weights` are 1.0 on the supervised tokens of two-field data.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(raw, list):
        raise DataError(f"{path} must hold a JSON list of [token_ids, supervise_mask] samples")
    samples = []
    for index, sample in enumerate(raw):
        if (
            not isinstance(sample, (list, tuple))
            or len(sample) not in (2, 3)
            or not all(isinstance(field, list) and len(field) == len(sample[0]) for field in sample)
            or not sample[0]
        ):
            raise DataError(
                f"{path}: sample {index} is not [token_ids, supervise_mask] or [token_ids, supervise_mask, weights] "
                "of equal-length, non-empty lists"
            )
        token_ids, supervise_mask = sample[0], sample[1]
        if not all(type(token_id) is int for token_id in token_ids):
            wrong = next(token_id for token_id in token_ids if type(token_id) is not int)
            raise DataError(
                f"{path}: sample {index} has a token id that is not an integer ({wrong!r:.40}); "
                "regenerate the data with data_pipeline.generate_dataset"
            )
        smallest, largest = min(token_ids), max(token_ids)
        if smallest < 0:
            raise DataError(
                f"{path}: sample {index} has token id {smallest}; token ids are 0 or more - regenerate the data with "
                "data_pipeline.generate_dataset"
            )
        if largest >= vocab_size:
            raise DataError(
                f"{path}: sample {index} has token id {largest} but the model's vocabulary has {vocab_size} entries; "
                "the data was tokenized for another model type or tokenizer - regenerate it with "
                "data_pipeline.generate_dataset for this --model_type and --model_path"
            )
        if len(token_ids) > max_context:
            raise DataError(
                f"{path}: sample {index} has {len(token_ids)} tokens, more than the model type's context of "
                f"{max_context}; the data was made for another model type"
            )
        wrong_flag = next((flag for flag in supervise_mask if flag not in (True, False) or type(flag) is float), None)
        if wrong_flag is not None:  # "false" is a true value to bool(): every token would be supervised
            raise DataError(
                f"{path}: sample {index} has a supervise mask value {wrong_flag!r:.40}; the mask holds true/false "
                "(or 1/0) - regenerate the data with data_pipeline.generate_dataset"
            )
        supervise_mask = [bool(flag) for flag in supervise_mask]
        weights = _checked_weights(path, index, sample[2], supervise_mask) if len(sample) == 3 else None
        samples.append(Sample(token_ids, supervise_mask, weights))
    return samples


def _checked_weights(path: str, index: int, weights: list, supervise_mask: list[bool]) -> list[float]:
    """Per-token weights: finite numbers >= 0, nonzero exactly where the mask is true."""
    for position, (weight, supervised) in enumerate(zip(weights, supervise_mask)):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise DataError(
                f"{path}: sample {index} has weight {weight!r} at position {position}; weights are numbers >= 0"
            )
        if bool(weight) != supervised:
            raise DataError(
                f"{path}: sample {index} has weight {weight} at position {position}, where the supervise mask is "
                f"{str(supervised).lower()}; weights are nonzero exactly on the supervised tokens (a weight of 0 "
                "trains nothing: leave such a turn unsupervised)"
            )
    return [float(weight) for weight in weights]


def supervised_target_count(supervise_mask: Sequence[bool]) -> int:
    """Tokens the model is trained to predict: every supervised position after the first."""
    return sum(supervise_mask[1:])


def _targets(token_ids: Sequence[int], supervise_mask: Sequence[bool]) -> list[int]:
    """Next-token targets aligned with the inputs; unsupervised and last positions are ignored."""
    return [token_ids[t + 1] if supervise_mask[t + 1] else IGNORE_INDEX for t in range(len(token_ids) - 1)] + [
        IGNORE_INDEX
    ]


def collate(
    samples: Sequence[Sample],
    indices: Sequence[int],
    plan: StepPlan,
    pad_token_id: int,
    packing: bool,
    loss_reduction: str = "token",
) -> dict:
    """Model inputs plus `targets` and `weights` for one micro-batch (a weight-0 dummy row when it is empty).

    Padded: input_ids / attention_mask / targets / weights of shape [rows, longest].
    Packed: one row of all samples back to back, `position_ids` restarting at 0
    per sample, `cu_seq_lens` (sample boundaries, transformers' varlen convention)
    and no attention mask.
    """
    if not indices:
        one = torch.tensor([[pad_token_id]])
        return {
            "input_ids": one,
            "attention_mask": None,
            "position_ids": None,
            "cu_seq_lens": None,
            "targets": torch.full((1, 1), IGNORE_INDEX),
            "weights": torch.zeros(1, 1),
            "tokens": 0,
            "padded_tokens": 1,
        }
    rows = []
    for index in indices:
        sample = samples[index]
        token_ids, supervise_mask = sample.token_ids, sample.supervise_mask
        targets = _targets(token_ids, supervise_mask)
        weights = loss_weights(sample, supervised_target_count(supervise_mask), samples, plan, loss_reduction)
        rows.append((token_ids, targets, weights))
    tokens = sum(len(row[0]) for row in rows)

    if packing:
        lengths = [len(row[0]) for row in rows]
        cu_seq_lens = torch.tensor([0] + lengths).cumsum(0, dtype=torch.int32)
        return {
            "input_ids": torch.tensor([[t for row in rows for t in row[0]]]),
            "attention_mask": None,
            "position_ids": torch.tensor([[p for length in lengths for p in range(length)]]),
            "cu_seq_lens": cu_seq_lens,
            "max_length": max(lengths),
            "targets": torch.tensor([[t for row in rows for t in row[1]]]),
            "weights": torch.tensor([[w for row in rows for w in row[2]]], dtype=torch.float32),
            "tokens": tokens,
            "padded_tokens": tokens,
        }

    longest = max(len(row[0]) for row in rows)
    input_ids = torch.full((len(rows), longest), pad_token_id)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    targets = torch.full((len(rows), longest), IGNORE_INDEX)
    weights = torch.zeros((len(rows), longest), dtype=torch.float32)
    for r, (token_ids, row_targets, row_weights) in enumerate(rows):
        n = len(token_ids)
        input_ids[r, :n] = torch.tensor(token_ids)
        attention_mask[r, :n] = 1
        targets[r, :n] = torch.tensor(row_targets)
        weights[r, :n] = torch.tensor(row_weights)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": None,
        "cu_seq_lens": None,
        "targets": targets,
        "weights": weights,
        "tokens": tokens,
        "padded_tokens": len(rows) * longest,
    }
