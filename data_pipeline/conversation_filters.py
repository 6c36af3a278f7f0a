"""The optional corpus-level filters of `clean_sharegpt`: dominant language, then near-duplicates.

They run after the exact-duplicate check, on conversations in output order, in two
halves so the costly half runs in parallel:

- in the cleaning worker, `annotate(conversation)` attaches what the filters need
  (`language` code, MinHash `signature`) under the private key `_filters`;
- in the parent, `check(conversation)` removes that key and returns None to keep the
  conversation, or the report fields of a drop: `{"reason": "language:de"}` or
  `{"reason": "near_duplicate", "near_duplicate_of": KEPT_ID, "near_duplicate_file": FILE}`.

Language comes first, so a conversation in an unwanted language never becomes the kept
original of a near-duplicate. Both are off unless asked for (`--languages`,
`--near_dup_threshold`); their libraries are imported only then.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

ANNOTATIONS = "_filters"
NEAR_DUPLICATE = "near_duplicate"


@dataclass
class ConversationFilters:
    languages: tuple = ()  # ISO 639-1 codes to keep; empty keeps every language
    near_dup_threshold: float | None = None
    near_dup_seed: int = 1
    language_counts: collections.Counter = field(default_factory=collections.Counter)

    def __post_init__(self):
        self._index = None
        if self.near_dup_threshold is not None:
            from data_pipeline.near_dedup import NearDuplicateIndex

            self._index = NearDuplicateIndex(self.near_dup_threshold, seed=self.near_dup_seed)

    @property
    def active(self):
        return bool(self.languages) or self.near_dup_threshold is not None

    def worker_options(self):
        """What a worker needs to annotate: plain values, cheap to send to any process or Ray task."""
        return (bool(self.languages), self.near_dup_threshold is not None, self.near_dup_seed)

    def check(self, conversation, file_name):
        annotations = conversation.pop(ANNOTATIONS, None) or annotate_values(conversation, *self.worker_options())
        if self.languages:
            language = annotations["language"]
            self.language_counts[language] += 1
            if language not in self.languages:
                from data_pipeline.language import language_reason

                return {"reason": language_reason(language)}
        if self._index is not None:
            kept = self._index.add_unless_near_duplicate((conversation["id"], file_name), annotations["signature"])
            if kept is not None:
                return {"reason": NEAR_DUPLICATE, "near_duplicate_of": kept[0], "near_duplicate_file": kept[1]}
        return None

    def report_fields(self):
        fields = {}
        if self.languages:
            fields["languages_kept"] = list(self.languages)
            fields["languages"] = dict(self.language_counts.most_common())
        if self.near_dup_threshold is not None:
            fields["near_dup_threshold"] = self.near_dup_threshold
            fields["near_dup_seed"] = self.near_dup_seed
        return fields


def annotate(conversation, options):
    """Worker side: attach the language and signature the parent's `check` will need."""
    if conversation is not None and (options[0] or options[1]):
        conversation[ANNOTATIONS] = annotate_values(conversation, *options)
    return conversation


def annotate_values(conversation, want_language, want_signature, seed):
    values = {}
    if want_language:
        from data_pipeline.language import dominant_language

        values["language"] = dominant_language(conversation["items"])
    if want_signature:
        from data_pipeline.near_dedup import conversation_signature

        values["signature"] = conversation_signature(conversation["items"], seed=seed)
    return values
