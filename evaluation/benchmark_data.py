"""Loaders for question sets, judge prompts and answer files, in their published formats.

Every file's format is detected from its records' keys, said on stderr, and a file whose
records fit no format, fit several (ambiguous) or fit different ones (mixed) is refused
with a one-line error: never guessed.

Question sets (`DATA/question.jsonl`), one JSON object a line, either Vicuna / OpenChat style

    {"question_id": 1, "text": "How can I ...?", "category": "generic"}

or FastChat / MT-bench style, with one or more turns and an optional reference:

    {"question_id": 81, "category": "writing", "turns": ["Compose ...", "Rewrite ..."]}

Both load as `Question(question_id, category, turns, reference)`.

Vicuna judge files (OpenChat's and Vicuna's `reviewer.jsonl` and `prompt.jsonl`):
`{"reviewer_id", "prompt_id", "kwargs": {"model", "temperature", "max_tokens"}, "description", "category"}` and
`{"prompt_id", "system_prompt", "prompt_template" with {question} {answer_1} {answer_2} {prompt},
"defaults": {"prompt": ...}, "description", "category"}`. Reviewer categories are "general", "coding", "math".
MT-bench judge prompts (FastChat's `judge_prompts.jsonl`): `{"name": "single-v1", "type": "single" | "pairwise",
"system_prompt", "prompt_template", "output_format", ...}`.

Answer files, four formats (`ANSWER_FORMATS`), all loading as {question_id: {"model", "turns"}}:

    ochat                   {"question_id": 1, "model": "m", "text": "answer" | "turns": [...], "answer_id", "metadata"}
    openchat                {"question_id": 1, "answer_model": "m", "answer": "answer", "text": "the question", ...}
    fastchat_model_answer   {"question_id": 81, "model_id": "m", "choices": [{"index": 0, "turns": [...]}], ...}
    fastchat_vicuna_answer  {"question_id": 1, "answer_id": "...", "model_id": "m", "text": "answer", "metadata": {}}

ochat's own (written by `get_model_answer`) is `OUTPUT/{bench}_{model}.jsonl`. OpenChat's
copies the question's fields (`text`, `category`, ...) into each answer, so there `text` is the
question, never the answer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ochat.utils import files
from ochat.utils.files import write_jsonl_atomic, write_text_atomic  # noqa: F401 (re-exported)

REVIEWER_CATEGORIES = ("general", "coding", "math")


@dataclass
class Question:
    question_id: int | str
    category: str
    turns: list[str]
    reference: Optional[list[str]] = None
    extra: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.turns[0]


def question_file(data_path: str | Path) -> Path:
    data_path = Path(data_path)
    path = data_path / "question.jsonl" if data_path.is_dir() else data_path
    if not path.is_file():
        raise FileNotFoundError(f"no question file at {path} (expected DATA_PATH/question.jsonl)")
    return path


QUESTION_FORMATS = {
    "vicuna_question": {"question_id", "text"},
    "fastchat_question": {"question_id", "turns"},
}
ANSWER_KEYS = {"answer", "answer_model", "choices", "model", "model_id"}


def load_questions(data_path: str | Path) -> list[Question]:
    """Loads a Vicuna-style or FastChat-style question set from a folder or a question.jsonl file."""
    path = question_file(data_path)
    records = read_jsonl(path)
    if not records:
        raise SystemExit(f"{path}: no questions")
    formats = set()
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise SystemExit(f"{path}: question {number} is not a JSON object")
        if ANSWER_KEYS & record.keys():
            raise SystemExit(
                f"{path}: question {number} has answer fields {sorted(ANSWER_KEYS & record.keys())}; "
                "is this an answer file?"
            )
        formats.add(detect_format(record, QUESTION_FORMATS, f"{path}: question {number}"))
    if len(formats) > 1:
        raise SystemExit(f"{path}: mixed question formats {sorted(formats)}; one file holds one format")
    questions = []
    for record in records:
        turns = list(record["turns"]) if "turns" in record else [record["text"]]
        if not turns or not all(isinstance(turn, str) for turn in turns):
            raise SystemExit(f"{path}: question {record['question_id']} needs text turns, got {str(turns)[:80]}")
        known = {"question_id", "category", "turns", "text", "reference"}
        questions.append(
            Question(
                record["question_id"],
                record.get("category", "general"),
                turns,
                record.get("reference"),
                {k: v for k, v in record.items() if k not in known},
            )
        )
    check_unique_ids([question.question_id for question in questions], path)
    print(f"{path}: {len(questions)} questions ({formats.pop()} format)", file=sys.stderr)
    return questions


def detect_format(record: dict, formats: dict[str, set], where: str) -> str:
    """The one format whose required keys the record holds; refuses none or several."""
    matching = [name for name, required in formats.items() if required <= record.keys()]
    if not matching:
        raise SystemExit(
            f"{where} fits no known format (keys {sorted(record)}; expected one of "
            + "; ".join(f"{name}: {sorted(required)}" for name, required in formats.items())
            + ")"
        )
    if len(matching) > 1:
        raise SystemExit(f"{where} is ambiguous: its keys {sorted(record)} fit {matching}; refusing to guess")
    return matching[0]


def check_unique_ids(ids: list, path) -> None:
    seen, duplicates = set(), []
    for question_id in ids:
        if question_id in seen:
            duplicates.append(question_id)
        seen.add(question_id)
    if duplicates:
        raise SystemExit(f"{path}: duplicate question_id values {duplicates[:10]}; each question appears once")


def benchmark_name(data_path: str | Path) -> str:
    """The short name used in output file names: the data folder's name ("vicuna", "mt_bench")."""
    data_path = Path(data_path).resolve()
    return (data_path if data_path.is_dir() else data_path.parent).name


@dataclass
class Reviewer:
    """A judge configuration: system prompt, template, instructions and default sampling kwargs."""

    reviewer_id: str
    category: str
    system_prompt: str
    prompt_template: str
    instructions: str
    kwargs: dict

    def render(self, question: str, answer_1: str, answer_2: str) -> list[dict]:
        user = self.prompt_template.format(
            question=question, answer_1=answer_1, answer_2=answer_2, prompt=self.instructions
        )
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]


def load_reviewers(data_path: str | Path) -> dict[str, Reviewer]:
    """Joins reviewer.jsonl and prompt.jsonl into one Reviewer per reviewer category."""
    data_path = Path(data_path)
    folder = data_path if data_path.is_dir() else data_path.parent
    for name in ("reviewer.jsonl", "prompt.jsonl"):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing; a Vicuna-style data folder holds "
                "question.jsonl, reviewer.jsonl and prompt.jsonl"
            )
    prompt_records = read_jsonl(folder / "prompt.jsonl")
    reviewer_records = read_jsonl(folder / "reviewer.jsonl")
    check_records(prompt_records, PROMPT_KEYS, folder / "prompt.jsonl", "a Vicuna judge prompt")
    check_records(reviewer_records, REVIEWER_KEYS, folder / "reviewer.jsonl", "a Vicuna reviewer")
    prompts = {record["prompt_id"]: record for record in prompt_records}
    for prompt in prompts.values():
        try:
            prompt["prompt_template"].format(question="", answer_1="", answer_2="", prompt="")
        except (KeyError, IndexError, ValueError) as error:
            raise SystemExit(
                f"{folder}/prompt.jsonl: prompt {prompt['prompt_id']}'s template has a placeholder "
                f"other than {{question}} {{answer_1}} {{answer_2}} {{prompt}}: {error}"
            ) from None
    reviewers = {}
    for record in reviewer_records:
        prompt = prompts.get(record["prompt_id"])
        if prompt is None:
            raise SystemExit(
                f"{folder}/reviewer.jsonl: reviewer {record['reviewer_id']} names "
                f"prompt_id {record['prompt_id']}, which prompt.jsonl lacks"
            )
        reviewers[record["category"]] = Reviewer(
            record["reviewer_id"],
            record["category"],
            prompt["system_prompt"],
            prompt["prompt_template"],
            prompt.get("defaults", {}).get("prompt", ""),
            dict(record.get("kwargs", {})),
        )
    if "general" not in reviewers:
        raise SystemExit(f"{folder}/reviewer.jsonl has no reviewer for the 'general' category")
    print(f"{folder}: Vicuna judge prompts for {sorted(reviewers)}", file=sys.stderr)
    return reviewers


PROMPT_KEYS = {"prompt_id", "system_prompt", "prompt_template"}
REVIEWER_KEYS = {"reviewer_id", "prompt_id", "category"}
JUDGE_PROMPT_KEYS = {"name", "type", "system_prompt", "prompt_template"}


def check_records(records: list, required: set, path, what: str) -> None:
    """Every record holds the keys of `what`; the first that does not is named, with the keys it lacks."""
    if not records:
        raise SystemExit(f"{path} is empty; expected {what} per line")
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict) or not required <= record.keys():
            missing = sorted(required - record.keys()) if isinstance(record, dict) else sorted(required)
            raise SystemExit(f"{path}:{number}: not {what} (missing {missing})")


def load_judge_prompts(path: str | Path) -> dict[str, dict]:
    """FastChat's MT-bench judge prompts by name (single-v1, pair-v2, ... and their -multi-turn forms)."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"{path} is missing; an MT-bench data folder holds question.jsonl and judge_prompts.jsonl")
    records = read_jsonl(path)
    check_records(records, JUDGE_PROMPT_KEYS, path, "an MT-bench judge prompt")
    print(f"{path}: {len(records)} MT-bench judge prompts", file=sys.stderr)
    return {record["name"]: record for record in records}


def data_folder_kind(data_path: str | Path) -> str:
    """ "vicuna" for reviewer.jsonl + prompt.jsonl, "mt_bench" for judge_prompts.jsonl, "questions" otherwise."""
    folder = Path(data_path) if Path(data_path).is_dir() else Path(data_path).parent
    if (folder / "reviewer.jsonl").is_file() and (folder / "prompt.jsonl").is_file():
        return "vicuna"
    if (folder / "judge_prompts.jsonl").is_file():
        return "mt_bench"
    return "questions"


def reviewer_for(reviewers: dict[str, Reviewer], question_category: str) -> Reviewer:
    """Coding and math questions get their own reviewer; every other category the general one."""
    return reviewers.get(question_category, reviewers["general"])


def answer_path(output_path: str | Path, bench: str, model: str) -> Path:
    return Path(output_path) / f"{bench}_{model}.jsonl"


# format -> (keys its records hold, keys that would make it unclear which field is the answer)
ANSWER_FORMATS = {
    "ochat": ({"question_id", "model"}, {"answer", "answer_model", "choices"}),
    "openchat": ({"question_id", "answer_model", "answer"}, {"choices", "model", "model_id"}),
    "fastchat_model_answer": ({"question_id", "model_id", "choices"}, {"answer", "answer_model", "text"}),
    "fastchat_vicuna_answer": ({"question_id", "model_id", "text"}, {"answer", "answer_model", "turns"}),
}


def detect_answer_format(record: dict, where: str) -> str:
    if not isinstance(record, dict):
        raise SystemExit(f"{where} is not a JSON object")
    matching = [name for name, (required, _) in ANSWER_FORMATS.items() if required <= record.keys()]
    if not matching:
        raise SystemExit(
            f"{where} fits no known answer format (keys {sorted(record)}; expected "
            + "; ".join(f"{name}: {sorted(required)}" for name, (required, _) in ANSWER_FORMATS.items())
            + ")"
        )
    if len(matching) > 1:
        raise SystemExit(f"{where} is ambiguous: its keys {sorted(record)} fit {matching}; refusing to guess")
    clashing = sorted(ANSWER_FORMATS[matching[0]][1] & record.keys())
    if clashing:
        raise SystemExit(
            f"{where} is ambiguous: {matching[0]} format but it also holds {clashing}; "
            "refusing to guess which field is the answer"
        )
    return matching[0]


def answer_turns(record: dict, answer_format: str, where: str) -> tuple[str, list[str]]:
    """(model, answer turns) of one record in a known format."""
    if answer_format == "openchat":
        model, answer = record["answer_model"], record["answer"]
        turns = answer if isinstance(answer, list) else [answer]
    elif answer_format == "fastchat_model_answer":
        model, choices = record["model_id"], record["choices"]
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise SystemExit(f"{where}: 'choices' must be a non-empty list of {{\"turns\": [...]}}")
        turns = choices[0].get("turns")
    elif answer_format == "fastchat_vicuna_answer":
        model, turns = record["model_id"], [record["text"]]
    else:
        model = record["model"]
        if ("text" in record) == ("turns" in record):
            raise SystemExit(f"{where}: an ochat answer holds exactly one of 'text' and 'turns'")
        turns = record["turns"] if "turns" in record else [record["text"]]
    if not isinstance(turns, list) or not turns or not all(isinstance(turn, str) for turn in turns):
        raise SystemExit(f"{where}: the answer must be text (or a list of text turns), got {str(turns)[:80]}")
    return str(model), list(turns)


def load_answers(path: str | Path) -> dict:
    """Answers by question_id as {"model", "turns"}, in any of the ANSWER_FORMATS (detected, then said)."""
    path = Path(path)
    records = read_jsonl(path)
    if not records:
        raise SystemExit(f"{path}: no answers")
    formats = {detect_answer_format(record, f"{path}: record {number}") for number, record in enumerate(records, 1)}
    if len(formats) > 1:
        raise SystemExit(f"{path}: mixed answer formats {sorted(formats)}; one file holds one format")
    answer_format = formats.pop()
    check_unique_ids([record["question_id"] for record in records], path)
    answers = {}
    for number, record in enumerate(records, 1):
        model, turns = answer_turns(record, answer_format, f"{path}: record {number}")
        answers[record["question_id"]] = {"model": model, "turns": turns}
    models = sorted({answer["model"] for answer in answers.values()})
    print(f"{path}: {len(answers)} answers by {', '.join(models)} ({answer_format} format)", file=sys.stderr)
    return answers


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL file the user named; a file or line that cannot be read exits with one line naming it."""
    try:
        return files.read_jsonl(path)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    except OSError as error:
        raise SystemExit(f"error: cannot read {path}: {error.strerror or error}") from None


def answer_files(input_path: str | Path, bench: str) -> dict[str, Path]:
    """Model name -> answer file for every `{bench}_{model}.jsonl` in a folder."""
    prefix = f"{bench}_"
    found = {}
    for path in sorted(Path(input_path).glob(f"{prefix}*.jsonl")):
        found[path.stem[len(prefix) :]] = path
    return found
