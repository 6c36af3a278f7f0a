"""Cleaning rules of data_pipeline.clean_sharegpt, on small crafted pages and on the bundled corpus."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data_pipeline.clean_sharegpt import clean_pages
from data_pipeline.examples.make_examples import generate_corpus, render_code_block, render_page
from data_pipeline.sharegpt_conversation import conversation_hash
from data_pipeline.sharegpt_markdown import html_to_markdown
from data_pipeline.sharegpt_page import clean_page

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_CORPUS = REPO_ROOT / "data_pipeline" / "examples" / "ShareGPT"
FORMAT_EXAMPLE = REPO_ROOT.parent / "shared" / "formats" / "sharegpt_page_example.html"


def answer_html(*parts):
    return '<div class="markdown prose w-full break-words dark:prose-invert light">' + "".join(parts) + "</div>"


def page(items, model="Model: GPT-4", page_id="page1", escape_json=True):
    return render_page(page_id, items, model, 7, "title", escape_json=escape_json).encode("utf-8")


def human(text):
    return {"from": "human", "value": text}


def gpt(html):
    return {"from": "gpt", "value": html}


def clean_values(items, **kwargs):
    conversation, reason = clean_page(page(items), **kwargs)
    assert reason is None, reason
    return [item["value"] for item in conversation["items"]]


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "data_pipeline.clean_sharegpt", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )


# ----------------------------------------------------------------------------- Markdown conversion


def test_code_block_header_becomes_fenced_block_keeping_indentation_and_underscores():
    code = "def first_item(my_list):\n    return my_list[0]  # the head"
    values = clean_values([human("q"), gpt(answer_html("<p>Like this:</p>", render_code_block(code, "python")))])
    assert values[1] == "Like this:\n\n```python\n" + code + "\n```"


@pytest.mark.parametrize("language", ["rust", "bash", "cpp", "sql", "javascript"])
def test_code_block_language_is_carried_to_the_fence(language):
    values = clean_values([human("q"), gpt(answer_html(render_code_block("let x_y = 1;", language)))])
    assert values[1] == f"```{language}\nlet x_y = 1;\n```"


def test_html_to_markdown_converts_lists_inline_code_and_bold():
    markdown = html_to_markdown(
        answer_html("<p>Use <code>snake_case</code> and <strong>care</strong>:</p><ul><li>one</li><li>two</li></ul>")
    )
    assert markdown == "Use `snake_case` and **care**:\n\n- one\n- two"


def test_leading_regeneration_counter_is_removed_from_both_roles():
    values = clean_values(
        [human("2 / 2Why is the sky blue?"), gpt("1 / 3" + answer_html("<p>Rayleigh scattering.</p>"))]
    )
    assert values == ["Why is the sky blue?", "Rayleigh scattering."]


def test_counter_later_in_the_text_is_kept():
    values = clean_values([human("Is 1 / 2 bigger than 1 / 3?"), gpt(answer_html("<p>Yes, 1 / 2 is bigger.</p>"))])
    assert values == ["Is 1 / 2 bigger than 1 / 3?", "Yes, 1 / 2 is bigger."]


def test_copy_chars_words_noise_is_removed():
    values = clean_values([human("q"), gpt(answer_html("<p>Done.</p>") + "Copy125 chars / 21 words")])
    assert values[1] == "Done."


def test_empty_copy_code_block_is_removed():
    html = answer_html("<p>Before.</p>", render_code_block("", "python"), "<p>After.</p>")
    assert clean_values([human("q"), gpt(html)])[1] == "Before.\n\nAfter."


def test_blank_line_runs_collapse_outside_code_but_not_inside():
    code = "import os\n\n\ndef main():\n    pass"
    html = answer_html("<p>A<br><br><br><br>B</p>", render_code_block(code, "python"))
    human_text = "first\n\n\n\n\nsecond"
    values = clean_values([human(human_text), gpt(html)])
    assert values[0] == "first\n\nsecond"
    assert "\n\n\n" not in values[1].split("```")[0]
    assert "```python\n" + code + "\n```" in values[1]


def test_human_turn_is_plain_text_not_html():
    text = "Why does <div> ignore my **kwargs and snake_case?"
    assert clean_values([human(text), gpt(answer_html("<p>ok</p>"))])[0] == text


def test_raw_and_escaped_json_give_the_same_conversation():
    items = [human("Compare a < b && c > d"), gpt(answer_html("<p>Use <code>a &lt; b</code>.</p>"))]
    escaped, _ = clean_page(page(items, escape_json=True))
    raw, _ = clean_page(page(items, escape_json=False))
    assert escaped == raw
    assert escaped["items"][1]["value"] == "Use `a < b`."


def test_format_documentation_example_page_cleans():
    if not FORMAT_EXAMPLE.exists():
        pytest.skip("format example lives outside the repository")
    conversation, reason = clean_page(FORMAT_EXAMPLE)
    assert reason is None
    assert conversation["model"] == "Model: GPT-4" and conversation["views"] == 42
    assert "```python\nnumbers = [1, 2, 3]\nreversed_copy = numbers[::-1]" in conversation["items"][1]["value"]


# ----------------------------------------------------------------------------- turn shape


def test_leading_gpt_turn_is_dropped():
    conversation, _ = clean_page(page([gpt(answer_html("<p>Hi!</p>")), human("q"), gpt(answer_html("<p>a</p>"))]))
    assert [item["from"] for item in conversation["items"]] == ["human", "gpt"]


def test_trailing_human_turn_is_dropped():
    conversation, _ = clean_page(page([human("q"), gpt(answer_html("<p>a</p>")), human("thanks")]))
    assert [item["value"] for item in conversation["items"]] == ["q", "a"]


@pytest.mark.parametrize("items", [[human("alone")], [human("q"), human("hello?")], []])
def test_fewer_than_two_turns_drops_the_page(items):
    assert clean_page(page(items)) == (None, "too_few_turns")


def test_non_alternating_roles_drop_the_page():
    items = [human("q"), human("also"), gpt(answer_html("<p>a</p>")), human("q2"), gpt(answer_html("<p>b</p>"))]
    assert clean_page(page(items)) == (None, "roles_not_alternating")


@pytest.mark.parametrize("roles", [("human", "system", "human", "gpt"), ("user", "assistant"), ("human", "bing")])
def test_unknown_role_drops_the_page(roles):
    items = [{"from": role, "value": "text"} for role in roles]
    assert clean_page(page(items)) == (None, "unknown_role")


def test_turn_left_empty_by_cleaning_drops_the_page():
    assert clean_page(page([human("q"), gpt(answer_html("", render_code_block("", "python")))])) == (None, "empty_turn")


# ----------------------------------------------------------------------------- blocked words


def test_blocked_word_is_matched_case_insensitively():
    items = [human("who made you?"), gpt(answer_html("<p>I was trained by OpenAI.</p>"))]
    assert clean_page(page(items)) == (None, "blocked_word")


def test_blocked_words_can_be_replaced():
    items = [human("tell me about OpenAI"), gpt(answer_html("<p>As an AI language model, I can.</p>"))]
    assert clean_page(page(items), blocked_words=["as an ai language model"]) == (None, "blocked_word")
    assert clean_page(page(items), blocked_words=[])[1] is None


def test_blocked_words_file_overrides_the_default(tmp_path):
    in_dir = tmp_path / "ShareGPT"
    in_dir.mkdir()
    (in_dir / "a.html").write_bytes(page([human("OpenAI?"), gpt(answer_html("<p>A company.</p>"))], page_id="a"))
    (in_dir / "b.html").write_bytes(page([human("Bananas?"), gpt(answer_html("<p>Yellow.</p>"))], page_id="b"))
    words_file = tmp_path / "blocked.txt"
    words_file.write_text("# one per line\nBANANA\n")
    out_file = tmp_path / "clean.json"
    result = run_cli("--in-dir", in_dir, "--out-file", out_file, "--blocked-words", words_file, "--num-workers", 1)
    assert result.returncode == 0, result.stderr
    assert [conversation["id"] for conversation in json.loads(out_file.read_text())] == ["a"]


# ----------------------------------------------------------------------------- malformed pages

MALFORMED_PAGES = {
    "no_next_data": b"<html><head><title>Just a moment...</title></head><body>checking</body></html>",
    "invalid_json": b'<html><script id="__NEXT_DATA__" type="application/json">{"props": {"pageProps": </script></html>',
    "no_content": b'<html><script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":{"statusCode":404}}}</script>',
    "undecodable_bytes": b'<html>caf\xe9 \xff\xfe<script id="__NEXT_DATA__">{}</script></html>',
    "invalid_items": b'<html><script id="__NEXT_DATA__">{"props":{"pageProps":{"content":{"items":[{"from":"human","value":null}]}}}}</script>',
}


@pytest.mark.parametrize("reason", sorted(MALFORMED_PAGES))
def test_malformed_page_is_dropped_with_its_reason(reason):
    assert clean_page(MALFORMED_PAGES[reason]) == (None, reason)


def test_markup_the_converter_cannot_handle_drops_the_page():
    too_deep = "<p>" + "<b>" * 5000 + "x" + "</b>" * 5000 + "</p>"
    assert clean_page(page([human("q"), gpt(too_deep)])) == (None, "unparseable_markup")


def test_next_data_json_that_is_not_an_object_is_no_content():
    assert clean_page(b'<script id="__NEXT_DATA__">[1, 2]</script>') == (None, "no_content")


# ----------------------------------------------------------------------------- dedup, determinism, report


def test_hash_is_sha256_of_the_cleaned_turns():
    conversation, _ = clean_page(page([human("q"), gpt(answer_html("<p>a</p>"))]))
    expected = hashlib.sha256(json.dumps([["human", "q"], ["gpt", "a"]], separators=(",", ":")).encode()).hexdigest()
    assert conversation["hash"] == expected == conversation_hash(conversation["items"])


def test_duplicate_keeps_first_page_in_sorted_order(tmp_path):
    items = [human("q"), gpt(answer_html("<p>a</p>"))]
    noisy_items = [human("1 / 1q"), gpt(answer_html("<p>a</p>") + "Copy1 chars / 1 words")]
    (tmp_path / "b.html").write_bytes(page(items, page_id="b"))
    (tmp_path / "a.html").write_bytes(page(noisy_items, page_id="a"))
    (tmp_path / "c.html").write_bytes(page(items, page_id="c"))
    conversations, report = clean_pages(sorted(tmp_path.glob("*.html")))
    assert [conversation["id"] for conversation in conversations] == ["a"]
    assert report["files"] == [
        {"file": "a.html", "status": "kept", "id": "a"},
        {"file": "b.html", "status": "duplicate", "reason": "duplicate", "duplicate_of": "a.html"},
        {"file": "c.html", "status": "duplicate", "reason": "duplicate", "duplicate_of": "a.html"},
    ]


def test_output_is_byte_identical_for_one_and_two_workers(tmp_path):
    outputs = []
    for workers in (1, 2):
        out_file = tmp_path / f"w{workers}" / "sharegpt_clean.json"
        result = run_cli("--in-dir", BUNDLED_CORPUS, "--out-file", out_file, "--num-workers", workers)
        assert result.returncode == 0, result.stderr
        outputs.append((out_file.read_bytes(), out_file.with_name("sharegpt_clean.report.json").read_bytes()))
    assert outputs[0] == outputs[1]


def test_report_accounts_for_every_file(tmp_path):
    out_file = tmp_path / "sharegpt_clean.json"
    result = run_cli("--in-dir", BUNDLED_CORPUS, "--out-file", out_file, "--num-workers", 2)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "sharegpt_clean.report.json").read_text())
    conversations = json.loads(out_file.read_text())
    page_count = len(list(BUNDLED_CORPUS.glob("*.html")))
    assert report["total_files"] == page_count
    assert report["kept"] == len(conversations)
    assert report["kept"] + report["duplicates"] + sum(report["dropped"].values()) == page_count
    listed = [entry["file"] for entry in report["files"]]
    assert len(listed) == len(set(listed)) == page_count == report["entries"]
    kept_files = {entry["file"] for entry in report["files"] if entry["status"] == "kept"}
    assert kept_files == {f"{conversation['id']}.html" for conversation in conversations}
    assert "kept" in result.stdout and "report:" in result.stdout


def test_bundled_corpus_exercises_every_rule():
    conversations, report = clean_pages(sorted(BUNDLED_CORPUS.glob("*.html")), num_workers=2)
    assert set(report["dropped"]) >= {
        "undecodable_bytes",
        "no_next_data",
        "invalid_json",
        "no_content",
        "invalid_items",
        "too_few_turns",
        "roles_not_alternating",
        "blocked_word",
    }
    assert report["duplicates"] >= 5
    models = [conversation["model"] for conversation in conversations]
    assert models.count("Model: GPT-4") > len(models) / 2
    assert any("GPT-3.5" in (model or "") for model in models)
    words = [sum(len(item["value"].split()) for item in conversation["items"]) for conversation in conversations]
    assert sum(count > 1800 for count in words) >= len(conversations) // 20
    assert any(any(ord(char) > 0x3000 for char in conversation["items"][0]["value"]) for conversation in conversations)


def test_bundled_corpus_is_what_the_generator_writes(tmp_path):
    written = generate_corpus(tmp_path, num_pages=len(list(BUNDLED_CORPUS.glob("*.html"))), seed=0)
    for path in written:
        assert path.read_bytes() == (BUNDLED_CORPUS / path.name).read_bytes(), path.name


def test_missing_input_folder_fails_with_a_clear_message(tmp_path):
    result = run_cli("--in-dir", tmp_path / "nope", "--out-file", tmp_path / "out.json")
    assert result.returncode != 0
    assert "does not exist" in result.stderr


def test_speedups_give_the_same_markdown_as_plain_markdownify():
    from markdownify import markdownify

    from data_pipeline.sharegpt_page import read_conversation

    answers = []
    for path in sorted(BUNDLED_CORPUS.glob("*.html"))[:120]:
        try:
            answers += [item["value"] for item in read_conversation(path.read_bytes())[3] if item["from"] == "gpt"]
        except Exception:
            continue
    assert len(answers) > 100
    plain_options = dict(
        strip=["div", "span"], heading_style="ATX", bullets="-", escape_underscores=False, escape_asterisks=False
    )
    assert [html_to_markdown(answer) for answer in answers] == [
        markdownify(answer, **plain_options) for answer in answers
    ]


def test_parent_lookup_tag_finds_the_same_parent_as_bs4():
    from bs4 import BeautifulSoup, Tag

    from data_pipeline.sharegpt_markdown import ParentLookupTag

    html = "<pre><div><code><b>x</b></code></div></pre><p><i>y</i></p>"
    fast = BeautifulSoup(html, "html.parser", element_classes={Tag: ParentLookupTag})
    plain = BeautifulSoup(html, "html.parser")
    for name in ("b", "i"):
        for wanted in ("pre", "code", "p", "table"):
            found_fast, found_plain = fast.find(name).find_parent(wanted), plain.find(name).find_parent(wanted)
            assert (found_fast and found_fast.name) == (found_plain and found_plain.name)


CODE_BLOCK_VARIANTS = {
    "canonical": render_code_block("x_y = [1,  2]\n\n\nprint(x_y)", "python"),
    "empty code": render_code_block("", "python"),
    "whitespace between tags": render_code_block("a = 1", "python").replace("><", ">\n<"),
    "label without span": render_code_block("a = 1", "go").replace('<span class="">go</span>', "go"),
    "label with leading space, no span": render_code_block("a = 1", "go").replace('<span class="">go</span>', " go"),
    "no icon": re.sub(r"<svg.*?</svg>", "", render_code_block("fn main() {}", "rust"), flags=re.S),
    "no label": render_code_block("a = 1", "python").replace('<span class="">python</span>', ""),
}


@pytest.mark.parametrize("variant", sorted(CODE_BLOCK_VARIANTS))
def test_code_block_markup_variants_give_the_same_markdown_as_plain_markdownify(variant):
    from markdownify import markdownify

    html = answer_html("<p>Code:</p>", CODE_BLOCK_VARIANTS[variant], "<p>Done.</p>")
    plain = markdownify(
        html, strip=["div", "span"], heading_style="ATX", bullets="-", escape_underscores=False, escape_asterisks=False
    )
    assert html_to_markdown(html) == plain


def test_unreadable_file_is_dropped_not_raised(tmp_path):
    assert clean_page(tmp_path / "vanished.html") == (None, "unreadable_file")
