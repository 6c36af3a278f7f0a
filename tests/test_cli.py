"""Every CLI answers to both spellings of its long options and shows one in --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ochat.utils.cli import ArgumentParser


def make_parser() -> ArgumentParser:
    parser = ArgumentParser()
    parser.add_argument("--model_type", default="a")
    group = parser.add_argument_group("client")
    group.add_argument("--api_base", default=None)
    parser.add_argument("--split_long", action="store_true")
    return parser


@pytest.mark.parametrize("spelling", ["--model_type", "--model-type"])
def test_both_spellings_reach_the_same_option(spelling):
    assert make_parser().parse_args([spelling, "openchat"]).model_type == "openchat"


def test_other_spelling_works_inside_argument_groups_and_flags():
    args = make_parser().parse_args(["--api-base", "http://x", "--split-long"])
    assert args.api_base == "http://x" and args.split_long is True


def test_help_shows_one_spelling():
    text = make_parser().format_help()
    assert "--model_type" in text and "--model-type" not in text


def test_unknown_option_still_refused():
    with pytest.raises(SystemExit):
        make_parser().parse_args(["--model-typo", "x"])


@pytest.mark.parametrize(
    "module",
    [
        "data_pipeline.clean_sharegpt",
        "data_pipeline.generate_dataset",
        "ochat.serving.openai_api_server",
        "evaluation.get_model_answer",
    ],
)
def test_module_help_uses_underscores(module):
    text = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True).stdout
    usage = text.split("\n\n")[0]
    long_options = [word.strip("[],") for word in usage.split() if word.startswith(("--", "[--"))]
    assert long_options and not [option for option in long_options if "-" in option.lstrip("[").removeprefix("--")]
