"""ChatGPT's answer HTML as Markdown, and the ShareGPT page noise taken out of a turn.

The HTML of an answer is converted with markdownify (div/span wrappers stripped so code
keeps its indentation and underscores), after markup that cannot change the result is
dropped; conversions are remembered per worker process, since scraped data repeats answers.
`clean_markdown` then turns `LANGCopy code` headers into fenced blocks and removes
`CopyN chars / M words` noise, empty code blocks and runs of blank lines outside code.
"""

import functools
import re

from bs4 import Tag
from markdownify import MarkdownConverter

MARKDOWN_CACHE_SIZE = 2048  # answers remembered per worker (a few MiB)

# Every pattern runs in time linear in the text, whatever the text: no `.*?` that can rescan the
# rest of the text from many start points (closing tags are looked for once, see `tag_blocks`),
# tag attributes are `[^<>]*` (a scan ends at the next tag), and no pattern starts with a
# repeat such as `\n*` (see `remove_empty_code_blocks`). tests/test_hostile_pipeline.py times
# each on adversarial text.
UNCLOSED_TAIL_WORK = 2_000_000  # html.parser's rescanning, in characters, above which `escape_unclosed_tail` acts
# ShareGPT's regeneration counter, glued to the turn it numbers ("2 / 2Can you...", stacked: "1 / 12 / 3Can");
# "10 / 2 = ?" is no counter. Bounded repeats keep the backtracking over digit runs constant.
REGENERATION_COUNTER = re.compile(r"\s*(?:\d{1,3} / \d{1,3}){1,4}(?=[^\s\d/])")
COPY_CHARS_NOISE = re.compile(r"Copy\d+ chars / \d+ words")
EMPTY_CODE_BLOCK = re.compile(r"```\n[^\n`]*Copy code\s*```\n*")  # and the newlines before it, see below
CODE_BLOCK_HEADER = re.compile(r"```\n([^\n`]*?)Copy code")
FENCED_CODE = re.compile(r"(```.*?```)", re.S)
BLANK_LINE_RUN = re.compile(r"\n(?:[ \t]*\n){2,}")
PRE_OPEN = re.compile(r"<pre\b", re.I)
PRE_CLOSE = re.compile(r"</pre\s*>", re.I)
CODE_OPEN = re.compile(r"<code\b[^<>]*>", re.I)
CODE_CLOSE = re.compile(r"</code\s*>", re.I)
SPAN_TAG = re.compile(r"</?span\b[^<>]*>", re.I)
# A text-less icon, written without whitespace (whitespace there would be text inside <pre>).
SVG_ICON = (
    r"<svg\b[^<>]*>(?:<(?:path|rect|line|polyline|polygon|circle)\b[^<>]*>"
    r"(?:</(?:path|rect|line|polyline|polygon|circle)>)?)*</svg>"
)
COPY_BUTTON_ICON = re.compile(r"(<button\b[^<>]*>)" + SVG_ICON, re.I)
# ChatGPT's code block, exactly as the site writes it (no whitespace between tags):
# <pre><div><div><span>LANG</span><button><svg/>Copy code</button></div><div><code>CODE</code></div></div></pre>
CHATGPT_CODE_BLOCK = re.compile(
    r"(?P<pre><pre\b[^<>]*>)<div\b[^<>]*><div\b[^<>]*>(?:<span\b[^<>]*>)?(?P<language>[^<\s][^<]*)?(?:</span>)?"
    r"<button\b[^<>]*>(?:" + SVG_ICON + r")?Copy code</button></div>"
    r"<div\b[^<>]*>(?P<code_open><code\b[^<>]*>)(?P<code>(?:(?!</?code\b|</?pre\b).)*)</code></div></div></pre>",
    re.S | re.I,
)


class ParentLookupTag(Tag):
    """A bs4 Tag whose `find_parent("name")` walks the parent chain directly.

    markdownify asks every element `find_parent("pre")`; bs4's general
    matcher makes that about half of the conversion time. Lookups with
    anything beyond a plain tag name still go through bs4.
    """

    def find_parent(self, name=None, attrs=None, **kwargs):
        if not isinstance(name, str) or attrs or kwargs:
            return super().find_parent(name, attrs, **kwargs)
        parent = self.parent
        while parent is not None and parent.name != name:
            parent = parent.parent
        return parent


MARKDOWN_CONVERTER = MarkdownConverter(
    bs4_options={"features": "html.parser", "element_classes": {Tag: ParentLookupTag}},
    strip=["div", "span"],
    heading_style="ATX",
    bullets="-",
    escape_underscores=False,
    escape_asterisks=False,
)


def strip_regeneration_counter(text):
    """The text without ShareGPT's leading `N / M` regeneration counter (glued to what follows it)."""
    counter = REGENERATION_COUNTER.match(text)
    return text[counter.end() :] if counter is not None else text


def html_to_markdown(html):
    """Convert ChatGPT answer HTML to Markdown, keeping code verbatim.

    div/span wrappers (and the highlighter's spans inside code) are stripped so
    code keeps its indentation and identifiers keep their underscores.
    """
    return convert_markup(drop_inert_markup(html))


@functools.lru_cache(maxsize=MARKDOWN_CACHE_SIZE)
def convert_markup(html):
    """markdownify, remembered per worker: scraped data repeats answers (duplicate pages, shared
    conversations re-posted), and the conversion is nearly all of a page's cost."""
    return MARKDOWN_CONVERTER.convert(html)


def drop_inert_markup(html):
    """Remove markup that cannot change the Markdown, before the (slow) parse.

    Inside `<pre>` text is kept verbatim, so ChatGPT's code block (wrapper
    divs, language label, Copy-code button with its icon, highlighter spans)
    can be flattened to `<pre><code>LANGCopy codeCODE</code></pre>`, which
    markdownify turns into the very same text; elsewhere only the button's
    text-less icon goes. These tags are most of an answer's markup, so the
    parse and conversion get much cheaper; tests compare against plain
    markdownify.
    """
    html = CHATGPT_CODE_BLOCK.sub(
        lambda block: (
            block["pre"]
            + block["code_open"]
            + (block["language"] or "")
            + "Copy code"
            + SPAN_TAG.sub("", block["code"])
            + "</code></pre>"
        ),
        html,
    )
    html = COPY_BUTTON_ICON.sub(r"\1", html)
    return escape_unclosed_tail(strip_spans_in_code(html))


def escape_unclosed_tail(html):
    """Write each `<` after the last `>` as `&lt;` when there are enough of them to cost time.

    No tag can end there, so Python's html.parser takes such a `<` as text,
    but only after rescanning the rest of the input from each one: time grows
    with their count times the tail's length (`<span` x 32,000 took 10 s).
    Escaped, the tail is read in one pass; its text can differ from the
    parser's own reading only in how entities there are decoded, so small
    tails (below `UNCLOSED_TAIL_WORK`) are left exactly as they are.
    """
    tail_start = html.find("<", html.rfind(">") + 1)
    if tail_start < 0:
        return html
    tail = html[tail_start:]
    if tail.count("<") * len(tail) < UNCLOSED_TAIL_WORK:
        return html
    return html[:tail_start] + tail.replace("<", "&lt;")


def strip_spans_in_code(html):
    """Drop highlighter spans inside each `<pre>`'s `<code>` elements (markdownify drops them too, slower)."""
    pieces, position = [], 0
    for pre_open, pre_close in tag_blocks(html, PRE_OPEN, PRE_CLOSE, 0, len(html)):
        for code_open, code_close in tag_blocks(html, CODE_OPEN, CODE_CLOSE, pre_open.start(), pre_close.end()):
            pieces.append(html[position : code_open.end()])
            pieces.append(SPAN_TAG.sub("", html[code_open.end() : code_close.start()]))
            position = code_close.start()
    pieces.append(html[position:])
    return "".join(pieces)


def tag_blocks(text, open_pattern, close_pattern, start, end):
    """(opening, closing) matches of each `open.*?close` in text[start:end], left to right, in linear time.

    The regex `open.*?close` retries the rest of the text from every opening
    when a closing tag is missing (quadratic on `<pre><pre><pre>...`); here a
    missing closing tag ends the search, since none can follow a later opening either.
    """
    position = start
    while True:
        opening = open_pattern.search(text, position, end)
        if opening is None:
            return
        closing = close_pattern.search(text, opening.end(), end)
        if closing is None:
            return
        yield opening, closing
        position = closing.end()


def clean_markdown(text):
    """Remove ShareGPT page noise from a turn's Markdown and normalise code fences."""
    text = COPY_CHARS_NOISE.sub("", text)
    text = remove_empty_code_blocks(text)
    text = CODE_BLOCK_HEADER.sub(lambda match: "```" + match.group(1).strip() + "\n", text)
    parts = FENCED_CODE.split(text)
    parts[::2] = [BLANK_LINE_RUN.sub("\n\n", part) for part in parts[::2]]
    return "".join(parts).strip()


def remove_empty_code_blocks(text):
    """Replace each empty code block, with the newlines around it, by one blank line.

    The same as `re.sub(r"\\n*```\\n[^\\n`]*Copy code\\s*```\\n*", "\\n\\n", text)`, whose
    leading `\\n*` rescans a run of newlines from each of them (quadratic);
    here the newlines before a block are taken off the text before it.
    """
    pieces, position = [], 0
    for block in EMPTY_CODE_BLOCK.finditer(text):
        pieces += [text[position : block.start()].rstrip("\n"), "\n\n"]
        position = block.end()
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)
