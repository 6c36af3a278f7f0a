"""Write the plain-text corpus the tiny models' tokenizer is trained on, from the bundled pages.

    python -m data_pipeline.examples.make_tokenizer_corpus

`ochat.models.build_tiny` trains its sentencepiece tokenizer on
`ochat/models/tokenizer_corpus.txt`, a file shipped with the package so the
core never reads pages or imports the data pipeline. This script made it: every
non-empty line of every turn of every bundled page that cleans successfully,
in sorted file order, one line each. Run it again only when the bundled pages change.
"""

from __future__ import annotations

import argparse
import glob
import os

from data_pipeline.sharegpt_page import clean_page
from ochat.models.build_tiny import DEFAULT_CORPUS_TEXT
from ochat.utils.cli import ArgumentParser
from ochat.utils.files import write_text_atomic

PAGES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ShareGPT")


def corpus_lines(pages_dir: str) -> list[str]:
    """Non-empty lines of every turn of every page that cleans, in sorted file order."""
    paths = sorted(glob.glob(os.path.join(pages_dir, "*.html")))
    if not paths:
        raise FileNotFoundError(f"no ShareGPT pages (*.html) in {pages_dir!r}")
    lines = []
    for path in paths:
        conversation, _reason = clean_page(path)
        if conversation is not None:
            lines.extend(line for item in conversation["items"] for line in item["value"].split("\n") if line.strip())
    return lines


def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pages", default=PAGES_DIR, help="folder of ShareGPT *.html pages (default: the bundled ones)"
    )
    parser.add_argument("--out", default=DEFAULT_CORPUS_TEXT, help="text file to write (default: the shipped corpus)")
    args = parser.parse_args(argv)
    lines = corpus_lines(args.pages)
    write_text_atomic(args.out, "\n".join(lines) + "\n")
    print(f"{len(lines)} lines written to {args.out}")


if __name__ == "__main__":
    main()
