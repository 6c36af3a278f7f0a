"""Language identifiers compared on a small hand-written labelled set: accuracy and speed.

The set (`data_pipeline/examples/language_samples.py`): 12 languages x 8 chat sentences, scored three ways:
whole conversations (2-4 turns, every third answer with an English code block, code
looked past as `data_pipeline.language` does), single sentences, and 4-word fragments
(8 characters for Chinese and Japanese). Candidates, each shipping its model in its
package: py3langid and lingua (low- and high-accuracy modes). fasttext-langdetect is
not a candidate: it downloads its model at first use. The time of the first call
(model loading) is reported apart from the per-item time.

    python benchmarks/language_id.py
"""

from __future__ import annotations

import sys
import time

from data_pipeline.examples.language_samples import SENTENCES, labelled_conversations
from data_pipeline.language import prose_text


def candidates():
    from py3langid.langid import _get_identifier

    yield "py3langid", lambda: _get_identifier(), lambda identifier, text: identifier.classify(text)[0]
    try:
        from lingua import LanguageDetectorBuilder
    except ImportError:
        print("lingua not installed (pip install lingua-language-detector): skipped", file=sys.stderr)
        return

    def lingua_code(detector, text):
        language = detector.detect_language_of(text)
        return language.iso_code_639_1.name.lower() if language is not None else "und"

    yield (
        "lingua (low accuracy)",
        lambda: LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build(),
        lingua_code,
    )
    yield "lingua (high accuracy)", lambda: LanguageDetectorBuilder.from_all_languages().build(), lingua_code


def labelled_sets():
    conversations = [
        (language, prose_text(items)) for language, items in labelled_conversations(seed=0, per_language=10)
    ]
    sentences = [(language, sentence) for language, group in SENTENCES.items() for sentence in group]
    fragments = [
        (language, sentence[:8] if language in ("zh", "ja") else " ".join(sentence.split()[:4]))
        for language, sentence in sentences
    ]
    return {"conversations": conversations, "sentences": sentences, "4-word fragments": fragments}


def main():
    sets = labelled_sets()
    header = f"{'identifier':<24}{'first call s':>13}" + "".join(f"{name:>30}" for name in sets)
    print(f"{len(SENTENCES)} languages; accuracy (ms per item)")
    print(header)
    for name, build, identify in candidates():
        started = time.perf_counter()
        identifier = build()
        identify(identifier, "warm up the model")
        first_s = time.perf_counter() - started
        cells = []
        for samples in sets.values():
            started = time.perf_counter()
            correct = sum(identify(identifier, text) == language for language, text in samples)
            per_item_ms = (time.perf_counter() - started) / len(samples) * 1000
            cells.append(f"{correct / len(samples):.3f} ({per_item_ms:.2f} ms)")
        print(f"{name:<24}{first_s:>13.2f}" + "".join(f"{cell:>30}" for cell in cells))


if __name__ == "__main__":
    main()
