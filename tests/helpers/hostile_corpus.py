"""A seeded corpus of hostile ShareGPT folder entries, to prove the pipeline survives what users' folders hold.

`write_hostile_corpus(folder, seed)` fills `folder` with one entry of every
hostile kind (pages Python's parsers refuse, pages built to make patterns
quadratic, files that are no files, names the cleaner must skip, dumps with
malformed records or text around their list) and with
random mutations of the bundled pages (cut, flipped bytes, spliced snippets),
and returns `{name: kind}`. The same seed writes the same bytes.

    python -m tests.helpers.hostile_corpus OUT_FOLDER [--seed 0] [--mutations 240]
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

BUNDLED_CORPUS = Path(__file__).resolve().parents[2] / "data_pipeline" / "examples" / "ShareGPT"


def next_data_page(json_text: str, before: str = "", after: str = "") -> bytes:
    """A page whose `__NEXT_DATA__` script holds `json_text` as is."""
    return (
        f"<!DOCTYPE html><html><head><title>t</title></head><body>{before}"
        f'<script id="__NEXT_DATA__" type="application/json">{json_text}</script>{after}</body></html>'
    ).encode("utf-8", "surrogatepass")


def conversation_json(items, page_id="p1", views=3, model="Model: GPT-4", raw_views=None, raw_id=None) -> str:
    """NEXT_DATA JSON text; `raw_views` / `raw_id` are spliced in verbatim (NaN, 5,000 digits, ...)."""
    page_props = {"id": "__ID__", "views": "__VIEWS__", "content": {"items": items, "model": model}}
    text = json.dumps({"props": {"pageProps": page_props}})
    text = text.replace('"__ID__"', raw_id if raw_id is not None else json.dumps(page_id))
    return text.replace('"__VIEWS__"', raw_views if raw_views is not None else json.dumps(views))


def turns(answer_html="<p>An answer.</p>", question="A question?"):
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer_html}]


def hostile_pages() -> dict[str, tuple[str, bytes]]:
    """file name -> (kind, bytes) for every hostile page kind."""
    ok = conversation_json(turns())
    pages = {
        "props_list": next_data_page('{"props":[1]}'),
        "page_props_list": next_data_page('{"props":{"pageProps":[1,2]}}'),
        "content_string": next_data_page('{"props":{"pageProps":{"content":"x"}}}'),
        "items_dict": next_data_page('{"props":{"pageProps":{"content":{"items":{"from":"human"}}}}}'),
        "huge_integer": next_data_page(conversation_json(turns(), raw_views="9" * 5000)),
        "huge_integer_elsewhere": next_data_page('{"n":' + "1" * 5000 + "," + ok[1:]),
        "deep_json": next_data_page('{"props":' + "[" * 100_000 + "]" * 100_000 + "}"),
        "lone_surrogate": next_data_page(conversation_json(turns(question="caf\ud800"))),
        "lone_surrogate_escaped": next_data_page(ok.replace("A question?", "A \\ud800 question?")),
        "lone_surrogate_id": next_data_page(conversation_json(turns(), raw_id='"id\\udc00"')),
        "nan_views": next_data_page(conversation_json(turns(), raw_views="NaN")),
        "infinity_views": next_data_page(conversation_json(turns(), raw_views="-Infinity")),
        "float_views": next_data_page(conversation_json(turns(), raw_views="1e999")),
        "string_views": next_data_page(conversation_json(turns(question="Views as text?"), raw_views='"12"')),
        "negative_views": next_data_page(conversation_json(turns(), raw_views="-5")),
        "list_id": next_data_page(conversation_json(turns(), raw_id="[1, 2]")),
        "integer_id": next_data_page(conversation_json(turns(question="Integer id?"), raw_id="12345")),
        "bool_id": next_data_page(conversation_json(turns(), raw_id="true")),
        "newline_run": next_data_page(conversation_json(turns(question="x\n" + "\n" * 200_000 + "```\ny"))),
        "newline_run_in_answer": next_data_page(conversation_json(turns("<p>a</p>" + "\n" * 100_000 + "```x"))),
        "unclosed_pre": next_data_page(conversation_json(turns("<pre>" * 4000))),
        "unclosed_pre_tags": next_data_page(conversation_json(turns("<p>x</p>" + "<pre" * 16_000))),
        "unclosed_code": next_data_page(conversation_json(turns("<pre><code>" + "<code>" * 4000 + "</pre>"))),
        "unclosed_span": next_data_page(conversation_json(turns("<p>x</p>" + "<span" * 16_000))),
        "repeated_next_data": next_data_page("", after='<script id="__NEXT_DATA__">' * 16_000),
        "unclosed_comment": next_data_page(ok, before="<!--" * 16_000),
        "next_data_in_comment": f'<html><!-- <script id="__NEXT_DATA__">{ok}</script> --></html>'.encode(),
        "truncated": next_data_page(ok)[: len(next_data_page(ok)) * 2 // 3],
        "unknown_roles": next_data_page(
            conversation_json([{"from": "user", "value": "q"}, {"from": "assistant", "value": "a"}])
        ),
        "empty_file": b"",
        "not_utf8": b"\xff\xfe" + next_data_page(ok),
        "markup_too_deep": next_data_page(conversation_json(turns("<b>" * 5000 + "x"))),
        # markdownify re-quotes the whole text at every level: depth x size, minutes for this page
        "slow_nested_quotes": next_data_page(
            conversation_json(turns("<blockquote>" * 200 + "<p>" + "x<br>" * 100_000 + "</p>"))
        ),
    }
    return {f"hostile_{kind}.html": (kind, page) for kind, page in pages.items()}


def dump_record(record_id, question, answer="<div><p>An answer.</p></div>") -> str:
    return json.dumps(
        {"id": record_id, "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]},
        ensure_ascii=False,
    )


def hostile_dumps() -> dict[str, tuple[str, bytes, list[str]]]:
    """file name -> (kind, bytes, what becomes of each record in order: "kept" or the drop reason)."""

    def good(kind, number):
        return dump_record(f"{kind}-{number}", f"Question {number} of the {kind} dump?")

    dumps = {
        "bom": ("\ufeff[" + good("bom", 0) + "," + good("bom", 1) + "]", ["kept", "kept"]),
        "nan_views": (
            "["
            + good("nan", 0)
            + ","
            + dump_record("nan-1", "NaN views?")[:-1]
            + ', "views": NaN},'
            + good("nan", 2)
            + "]",
            ["kept", "invalid_views", "kept"],
        ),
        "infinite_views": (
            "[" + dump_record("inf-0", "Infinite views?")[:-1] + ', "views": 1e400},' + good("inf", 1) + "]",
            ["invalid_views", "kept"],
        ),
        "long_integer_id": (
            "[" + dump_record(10**29, "A 30-digit id?") + "," + good("long", 1) + "]",
            ["kept", "kept"],
        ),
        "huge_integer": ('[{"id": ' + "9" * 5000 + "}," + good("huge", 1) + "]", ["bad_json", "kept"]),
        "second_list": ("[" + good("second", 0) + "]\n[" + good("second", 1) + "]", ["kept", "kept"]),
        "text_after_list": ("[" + good("after", 0) + "] and then some text", ["kept", "bad_json"]),
        "cut_short": ("[" + good("cut", 0) + "," + good("cut", 1)[:30], ["kept", "bad_json"]),
        "ids_0_and_text_0": (
            "[" + dump_record(0, "Integer id zero?") + "," + dump_record("0", "Text id zero?") + "]",
            ["kept", "duplicate_id"],
        ),
        "invisible_characters": (
            "["
            + ",".join(
                [
                    dump_record("zw-0", "\u200b"),
                    dump_record("zw-1", "Who made you?", "Open\u200bAI did."),
                    dump_record("zw-2", "Who made you?", "ＯｐｅｎＡＩ did."),
                ]
            )
            + "]",
            ["empty_turn", "blocked_word", "blocked_word"],
        ),
        "markdown_inline_tag": (
            "[" + dump_record("md-0", "10 / 2 = ?", "It is 5.<br>\n\n```python\nif a<b and b>c:\n    pass\n```") + "]",
            ["kept"],
        ),
    }
    return {
        f"hostile_dump_{kind}.json": (kind, text.encode("utf-8"), outcomes) for kind, (text, outcomes) in dumps.items()
    }


MUTATION_SNIPPETS = [
    "<!--",
    "-->",
    "<pre>",
    "</pre>",
    "<code>",
    "<span",
    "<script>",
    "</script>",
    "NaN",
    "Infinity",
    "-1e999",
    '"props":[1],',
    "\\ud800",
    "\\udfff",
    "[[[[[[[[",
    "]]]]",
    "{",
    "}",
    '"',
    "\\",
    "\x00",
    "\n" * 500,
    '"from":"system",',
    '"views":"many",',
    '"id":null,',
    "9" * 400,
    "<![CDATA[",
    "&#0;",
    "&lt;",
    "\u2028",
]


def mutate(page: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random mutation of a page: (its name, the mutated bytes)."""
    kind = rng.choice(["cut", "flip", "delete", "duplicate", "splice", "splice", "splice", "role", "swap"])
    if kind == "cut":
        return kind, page[: rng.randrange(len(page))]
    if kind == "flip":
        data = bytearray(page)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return kind, bytes(data)
    start = rng.randrange(len(page))
    end = min(len(page), start + rng.randint(1, 400))
    if kind == "delete":
        return kind, page[:start] + page[end:]
    if kind == "duplicate":
        return kind, page[:end] + page[start:end] * rng.randint(1, 50) + page[end:]
    if kind == "role":
        return kind, page.replace(b'"from":"gpt"', rng.choice([b'"from":"bard"', b'"from":1', b'"from":"human"']), 1)
    if kind == "swap":
        return kind, page.replace(b'"human"', b'"gpt"', 1)
    snippet = rng.choice(MUTATION_SNIPPETS).encode("utf-8")
    return kind, page[:start] + snippet * rng.randint(1, 20) + page[start:]


def write_hostile_corpus(folder: str | os.PathLike, seed: int = 0, mutations: int = 240) -> dict[str, str]:
    """Fill `folder` with hostile entries; returns {entry name: kind}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    kinds = {}
    for name, (kind, page) in hostile_pages().items():
        (folder / name).write_bytes(page)
        kinds[name] = kind
    for name, (kind, dump, _) in hostile_dumps().items():
        (folder / name).write_bytes(dump)
        kinds[name] = "dump_" + kind

    bundled = sorted(BUNDLED_CORPUS.glob("*.html"))
    for number in range(mutations):
        source = rng.choice(bundled)
        kind, page = mutate(source.read_bytes(), rng)
        name = f"mutated_{number:03d}_{kind}_{source.stem}.html"
        (folder / name).write_bytes(page)
        kinds[name] = "mutated_" + kind
    for source in rng.sample(bundled, 20):  # untouched pages, a few also under other names
        (folder / source.name).write_bytes(source.read_bytes())
        kinds[source.name] = "bundled"

    # Entries that are no page, or no file.
    (folder / "PAGE.HTML").write_bytes(bundled[0].read_bytes())
    (folder / "page.htm").write_bytes(bundled[1].read_bytes())
    (folder / "notes.txt").write_text("not a page\n")
    (folder / "subfolder").mkdir(exist_ok=True)
    (folder / "folder.html").mkdir(exist_ok=True)
    os.mkfifo(folder / "p.html")
    os.symlink("/dev/zero", folder / "zero.html")
    os.symlink("/no/such/file", folder / "dangling.html")
    os.symlink(folder / "loop.html", folder / "loop.html")
    large = bundled[2].read_bytes()
    (folder / "large.html").write_bytes(large + b"<!-- padding -->" * (3_000_000 // 16))
    (folder / os.fsdecode(b"name_\xff.html")).write_bytes(bundled[3].read_bytes())
    kinds.update(
        {
            "PAGE.HTML": "upper_case_suffix",
            "page.htm": "htm_suffix",
            "notes.txt": "other_file",
            "subfolder": "folder",
            "folder.html": "folder_named_html",
            "p.html": "fifo",
            "zero.html": "symlink_to_device",
            "dangling.html": "dangling_symlink",
            "loop.html": "symlink_loop",
            "large.html": "too_large",
            os.fsdecode(b"name_\xff.html"): "undecodable_name",
        }
    )
    return kinds


def main(argv=None):
    from ochat.utils.cli import ArgumentParser

    parser = ArgumentParser(description=__doc__)
    parser.add_argument("out_folder", help="folder to fill (e.g. IN/ShareGPT for run_data_pipeline.sh IN OUT)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same bytes (default: 0)")
    parser.add_argument("--mutations", type=int, default=240, help="mutated bundled pages (default: 240)")
    args = parser.parse_args(argv)
    kinds = write_hostile_corpus(args.out_folder, args.seed, args.mutations)
    print(f"{len(kinds)} entries in {args.out_folder}", file=sys.stderr)


if __name__ == "__main__":
    main()
