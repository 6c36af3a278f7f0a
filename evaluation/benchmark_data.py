"""Loaders for question sets, judge prompts and answer files, in their published formats.

Question sets (`DATA/question.jsonl`), one JSON object a line, either Vicuna style

    {"question_id": 1, "text": "How can I ...?", "category": "generic"}

or FastChat / MT-bench style, with one or more turns and an optional reference:

    {"question_id": 81, "category": "writing", "turns": ["Compose ...", "Rewrite ..."]}

Both load as `Question(question_id, category, turns, reference)`.

Vicuna judge files: `reviewer.jsonl` ({"reviewer_id", "prompt_id", "kwargs": {"model", "temperature",
"max_tokens"}, "description", "category"}) and `prompt.jsonl` ({"prompt_id", "system_prompt",
"prompt_template" with {question} {answer_1} {answer_2} {prompt}, "defaults": {"prompt": ...},
"description", "category"}). Reviewer categories are "general", "coding" and "math".

Answer files written by this package: `OUTPUT/{bench}_{model}.jsonl`, one line per question:

    {"question_id": 1, "model": "openchat_13b", "text": "answer", "answer_id": "...", "metadata": {...}}

(multi-turn sets store "turns": ["answer 1", "answer 2"] instead of "text"). FastChat's
`model_answer/{model}.jsonl` ({"question_id", "model_id", "choices": [{"turns": [...]}]}) loads too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ochat.utils.files import read_jsonl, write_jsonl_atomic, write_text_atomic  # noqa: F401 (re-exported)

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


def load_questions(data_path: str | Path) -> list[Question]:
    """Loads a Vicuna-style or FastChat-style question set from a folder or a question.jsonl file."""
    path = question_file(data_path)
    questions = []
    for record in read_jsonl(path):
        if "question_id" not in record:
            raise ValueError(f"{path}: a question has no question_id: {record}")
        if "turns" in record:
            turns = list(record["turns"])
        elif "text" in record:
            turns = [record["text"]]
        else:
            raise ValueError(f"{path}: question {record['question_id']} has neither 'text' nor 'turns'")
        known = {"question_id", "category", "turns", "text", "reference"}
        questions.append(Question(record["question_id"], record.get("category", "general"), turns,
                                  record.get("reference"), {k: v for k, v in record.items() if k not in known}))
    ids = [question.question_id for question in questions]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate question_id values")
    return questions


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
        user = self.prompt_template.format(question=question, answer_1=answer_1, answer_2=answer_2,
                                           prompt=self.instructions)
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]


def load_reviewers(data_path: str | Path) -> dict[str, Reviewer]:
    """Joins reviewer.jsonl and prompt.jsonl into one Reviewer per reviewer category."""
    data_path = Path(data_path)
    folder = data_path if data_path.is_dir() else data_path.parent
    for name in ("reviewer.jsonl", "prompt.jsonl"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing; a Vicuna-style data folder holds "
                                    "question.jsonl, reviewer.jsonl and prompt.jsonl")
    prompts = {record["prompt_id"]: record for record in read_jsonl(folder / "prompt.jsonl")}
    reviewers = {}
    for record in read_jsonl(folder / "reviewer.jsonl"):
        prompt = prompts.get(record["prompt_id"])
        if prompt is None:
            raise ValueError(f"{folder}/reviewer.jsonl: reviewer {record['reviewer_id']} names "
                             f"prompt_id {record['prompt_id']}, which prompt.jsonl lacks")
        reviewers[record["category"]] = Reviewer(
            record["reviewer_id"], record["category"], prompt["system_prompt"], prompt["prompt_template"],
            prompt.get("defaults", {}).get("prompt", ""), dict(record.get("kwargs", {})))
    if "general" not in reviewers:
        raise ValueError(f"{folder}/reviewer.jsonl has no reviewer for the 'general' category")
    return reviewers


def reviewer_for(reviewers: dict[str, Reviewer], question_category: str) -> Reviewer:
    """Coding and math questions get their own reviewer; every other category the general one."""
    return reviewers.get(question_category, reviewers["general"])


def answer_path(output_path: str | Path, bench: str, model: str) -> Path:
    return Path(output_path) / f"{bench}_{model}.jsonl"


def load_answers(path: str | Path) -> dict:
    """Answers by question_id as {"model", "turns"}; reads our format and FastChat's model_answer format."""
    path = Path(path)
    answers = {}
    for record in read_jsonl(path):
        if "choices" in record:
            turns = list(record["choices"][0]["turns"])
            model = record.get("model_id", path.stem)
        elif "turns" in record:
            turns, model = list(record["turns"]), record.get("model", path.stem)
        elif "text" in record:
            turns, model = [record["text"]], record.get("model", path.stem)
        else:
            raise ValueError(f"{path}: answer to question {record.get('question_id')} has no text, turns or choices")
        answers[record["question_id"]] = {"model": model, "turns": turns}
    return answers


def answer_files(input_path: str | Path, bench: str) -> dict[str, Path]:
    """Model name -> answer file for every `{bench}_{model}.jsonl` in a folder."""
    prefix = f"{bench}_"
    found = {}
    for path in sorted(Path(input_path).glob(f"{prefix}*.jsonl")):
        found[path.stem[len(prefix):]] = path
    return found
