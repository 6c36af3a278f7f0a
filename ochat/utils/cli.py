"""Command lines that accept both spellings of every long option.

The original's tools mixed `--model-type` and `--model_type`; every ochat CLI
answers to both, while `--help` shows the one the option was declared with
(underscores throughout ochat).
"""

from __future__ import annotations

import argparse


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose `--long_option` also answers to `--long-option` and back."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        self._register_other_spellings()
        return super().parse_known_args(args, namespace)

    def _register_other_spellings(self) -> None:
        # Registered only in the lookup table, not on the action, so help lists one spelling.
        for action in self._actions:
            for option in action.option_strings:
                if not option.startswith("--"):
                    continue
                name = option[2:]
                other = "--" + (name.replace("-", "_") if "-" in name else name.replace("_", "-"))
                if other != option:
                    self._option_string_actions.setdefault(other, action)
