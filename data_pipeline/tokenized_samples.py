"""Tokenized samples from clean conversations: render with the model type's template, fit into its context.

`convert_conversations` renders every valid conversation in one batched tokenizer call and fits
each into `config.max_context` (`--truncation turn|tail`, `--split_long`, see
`data_pipeline.generate_dataset`), counting in `ConversionStats` what was truncated, split,
dropped and kept. A sample is `Sample(token_ids, supervise_mask, weights)`, stored as

    [token_ids, supervise_mask]            e.g. [[1, 910, 29901, ...], [false, false, true, ...]]
    [token_ids, supervise_mask, weights]   for conditioned (C-RLFT) types, weights nonzero where the mask is true
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ochat.config import ModelConfig, RenderedTurn, Sample, join_turns, render_turns_batch


@dataclass
class ConversionStats:
    """Token accounting of one conversion; `tokens_*` count template tokens, `supervised_*` the masked-in ones."""

    conversations: int = 0
    samples: int = 0
    fitted_whole: int = 0
    truncated: int = 0
    split_conversations: int = 0
    split_samples: int = 0
    dropped_first_exchange_too_long: int = 0
    dropped_no_supervised_tokens: int = 0
    rounds_dropped_too_long: int = 0
    tokens_total: int = 0
    tokens_kept: int = 0
    supervised_total: int = 0
    supervised_kept: int = 0
    invalid: list = field(default_factory=list)

    @property
    def tokens_discarded(self) -> int:
        return self.tokens_total - self.tokens_kept

    def as_dict(self) -> dict:
        result = asdict(self)
        result["tokens_discarded"] = self.tokens_discarded
        result["supervised_discarded"] = self.supervised_total - self.supervised_kept
        return result


def _rounds(turns: Sequence[RenderedTurn], ai_role: str) -> tuple[list[RenderedTurn], list[list[RenderedTurn]]]:
    """Leading system turns, then rounds that each end with an assistant turn (a trailing open round is left out)."""
    system = [turn for turn in turns if turn.role == "system"]
    rounds, current = [], []
    for turn in turns:
        if turn.role == "system":
            continue
        current.append(turn)
        if turn.role == ai_role:
            rounds.append(current)
            current = []
    return system, rounds


def _length(turns: Sequence[RenderedTurn], eot_token_id: int) -> int:
    return sum(len(turn.token_ids(eot_token_id)) for turn in turns)


def fit_conversation(
    config: ModelConfig,
    tokenizer,
    turns: Sequence[RenderedTurn],
    truncation: str = "turn",
    split_long: bool = False,
    stats: ConversionStats | None = None,
) -> list[Sample]:
    """Samples of at most `config.max_context` tokens made from one rendered conversation."""
    stats = stats if stats is not None else ConversionStats()
    max_context = config.max_context
    eot = tokenizer.eot_token_id
    full_sample = join_turns(config, tokenizer, turns)
    full_ids, full_mask = full_sample.token_ids, full_sample.supervise_mask
    stats.conversations += 1
    stats.tokens_total += len(full_ids)
    stats.supervised_total += sum(full_mask)

    if len(full_ids) <= max_context:
        samples = [full_sample]
        stats.fitted_whole += 1
    elif truncation == "tail" and not split_long:
        samples = [Sample(full_ids[:max_context], full_mask[:max_context], full_sample.weights[:max_context])]
        stats.truncated += 1
    else:
        bos_length = len(full_ids) - _length(turns, eot)
        system, rounds = _rounds(turns, config.ai_role)
        budget = max_context - bos_length - _length(system, eot)
        pieces: list[list[RenderedTurn]] = [[]]
        for index, round_turns in enumerate(rounds):
            round_length = _length(round_turns, eot)
            if round_length > budget:
                if index == 0 and not split_long:
                    stats.dropped_first_exchange_too_long += 1
                    return []
                stats.rounds_dropped_too_long += 1
                if not split_long:
                    break
                pieces.append([])
                continue
            if _length(pieces[-1], eot) + round_length > budget:
                if not split_long:
                    break
                pieces.append([])
            pieces[-1].extend(round_turns)
        pieces = [piece for piece in pieces if piece]
        if not pieces:
            stats.dropped_first_exchange_too_long += 1
            return []
        samples = [join_turns(config, tokenizer, list(system) + piece) for piece in pieces]
        if split_long and len(samples) > 1:
            stats.split_conversations += 1
            stats.split_samples += len(samples)
        else:
            stats.truncated += 1

    kept = []
    for sample in samples:
        token_ids, supervise_mask = sample.token_ids, sample.supervise_mask
        if not any(supervise_mask):
            stats.dropped_no_supervised_tokens += 1
            continue
        kept.append(sample)
        stats.samples += 1
        stats.tokens_kept += len(token_ids)
        stats.supervised_kept += sum(supervise_mask)
    return kept


def convert_conversations(
    config: ModelConfig,
    tokenizer,
    conversations: Sequence[dict],
    truncation: str = "turn",
    split_long: bool = False,
    stats: ConversionStats | None = None,
) -> list[Sample]:
    """Render (one batched tokenizer call) and fit every conversation; invalid ones are reported, not raised."""
    stats = stats if stats is not None else ConversionStats()
    valid, conditions = [], []
    for conversation in conversations:
        items = conversation.get("items") if isinstance(conversation, dict) else None
        if (
            not isinstance(items, list)
            or not items
            or any(
                not isinstance(item, dict)
                or item.get("from") not in config.role_prefix
                or not isinstance(item.get("value"), str)
                for item in items
            )
        ):
            stats.invalid.append(conversation.get("id") if isinstance(conversation, dict) else None)
            continue
        if not valid_weights(items) or not valid_condition(conversation.get("condition")):
            stats.invalid.append(conversation.get("id"))
            continue
        valid.append(items)
        conditions.append(conversation.get("condition") if config.is_conditioned else None)
    samples = []
    for turns in render_turns_batch(config, tokenizer, valid, conditions=conditions):
        samples.extend(fit_conversation(config, tokenizer, turns, truncation, split_long, stats))
    return samples


def valid_weights(items: Sequence[dict]) -> bool:
    """Item weights, where given, are finite numbers >= 0 (the renderer would refuse others)."""
    return all(
        isinstance(weight, (int, float)) and not isinstance(weight, bool) and 0 <= weight < float("inf")
        for weight in (item.get("weight", 1.0) for item in items)
    )


def valid_condition(condition) -> bool:
    """A condition is absent or text (a list would crash the renderer, a number would render `5 User:`)."""
    return condition is None or (isinstance(condition, str) and bool(condition.strip()))


def sample_record(sample: Sample, conditioned: bool) -> list:
    """The stored form: `[token_ids, supervise_mask, weights]` for conditioned types, the pair otherwise."""
    if conditioned:
        return [sample.token_ids, sample.supervise_mask, sample.weights]
    return [sample.token_ids, sample.supervise_mask]
