"""Generate ShareGPT pages in the site's 2023 format, deterministically from a seed.

Used for the bundled sample corpus (`data_pipeline/examples/ShareGPT/`) and for
larger benchmark corpora. Each page is a Next.js document whose conversation
sits in `<script id="__NEXT_DATA__">` at `props.pageProps`:

    {"props": {"pageProps": {"id": "Ab3xY9z",
        "content": {"items": [{"from": "human", "value": "plain text"},
                              {"from": "gpt", "value": "<div class=\\"markdown ...\\">...</div>"}],
                    "model": "Model: GPT-4"},
        "views": 42}}}

The mix covers every rule the cleaner applies: GPT-4 and GPT-3.5 pages, code
blocks with `LANGCopy code` headers, `N / M` regeneration counters,
`CopyN chars / M words` noise, empty code blocks, the blocked word "OpenAI",
exact duplicates under other ids, leading assistant turns, trailing human
turns, non-alternating roles, too few turns, malformed pages, non-English
chats and long conversations that exceed a 2,048-token context.

    python -m data_pipeline.examples.make_examples --out-dir data_pipeline/examples/ShareGPT
"""

import argparse
import html
import json
import random
import re
import string
from pathlib import Path

from data_pipeline.examples.topics import (
    ANSWER_CLOSERS,
    ANSWER_OPENERS,
    BLOCKED_EXCHANGES,
    FOREIGN_TOPICS,
    GENERIC_FOLLOWUPS,
    QUESTION_PREFIXES,
    QUESTION_SUFFIXES,
    TOPICS,
)

BUNDLED_PAGE_COUNT = 320
DEFAULT_OUT_DIR = Path(__file__).parent / "ShareGPT"

# Share of each page kind; "normal" takes whatever is left.
KIND_SHARES = {
    "long": 0.10,
    "foreign": 0.07,
    "blocked_word": 0.03,
    "duplicate": 0.035,
    "leading_gpt": 0.025,
    "trailing_human": 0.03,
    "non_alternating": 0.017,
    "too_few_turns": 0.017,
    "no_next_data": 0.008,
    "invalid_json": 0.008,
    "no_content": 0.008,
    "undecodable_bytes": 0.008,
    "invalid_items": 0.006,
}

MODELS = [
    ("Model: GPT-4", 0.63),
    ("Model: Default (GPT-3.5)", 0.27),
    ("Model: Legacy (GPT-3.5)", 0.04),
    ("Model: Web Browsing", 0.02),
    (None, 0.04),  # older pages carry no model field
]

COPY_ICON = (
    '<svg stroke="currentColor" fill="none" stroke-width="2" viewBox="0 0 24 24" '
    'stroke-linecap="round" stroke-linejoin="round" class="h-4 w-4" height="1em" width="1em" '
    'xmlns="http://www.w3.org/2000/svg"><path d="M16 4h2a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H6a2 2 0 0 '
    '1-2-2V6a2 2 0 0 1 2-2h2"></path><rect x="8" y="2" width="8" height="4" rx="1" ry="1"></rect></svg>'
)

KEYWORDS = {
    "def",
    "return",
    "import",
    "from",
    "for",
    "in",
    "if",
    "else",
    "elif",
    "while",
    "class",
    "let",
    "const",
    "var",
    "function",
    "async",
    "await",
    "fn",
    "mut",
    "use",
    "func",
    "package",
    "public",
    "private",
    "static",
    "void",
    "int",
    "new",
    "try",
    "catch",
    "finally",
    "with",
    "as",
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "JOIN",
    "ON",
    "LIMIT",
    "HAVING",
    "export",
    "interface",
    "type",
    "struct",
    "val",
    "fun",
    "data",
    "record",
    "using",
    "raise",
    "throw",
}


# ----------------------------------------------------------------------------- rendering


def render_inline(text):
    """Escape text and turn `code`, **bold** and *italic* into ChatGPT's inline tags."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    escaped = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
    escaped = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", escaped)
    return escaped


def highlight(code, language):
    """Wrap keywords and comments in hljs spans, as the site's highlighter did."""
    lines = []
    comment_marker = "#" if language in ("python", "bash", "dockerfile") else "//"
    if language == "sql":
        comment_marker = "--"
    for line in code.split("\n"):
        comment = ""
        if comment_marker in line and '"' not in line.split(comment_marker, 1)[0][-1:]:
            line, comment = line.split(comment_marker, 1)
            comment = comment_marker + comment
        escaped = html.escape(line, quote=False)
        escaped = re.sub(
            r"\b[A-Za-z]+\b",
            lambda m: f'<span class="hljs-keyword">{m.group(0)}</span>' if m.group(0) in KEYWORDS else m.group(0),
            escaped,
        )
        if comment:
            escaped += f'<span class="hljs-comment">{html.escape(comment, quote=False)}</span>'
        lines.append(escaped)
    return "\n".join(lines)


def render_code_block(code, language):
    return (
        '<pre><div class="bg-black mb-4 rounded-md"><div class="flex items-center relative '
        'text-gray-200 bg-gray-800 px-4 py-2 text-xs font-sans">'
        f'<span class="">{language}</span><button class="flex ml-auto gap-2">{COPY_ICON}Copy code</button></div>'
        f'<div class="p-4 overflow-y-auto"><code class="!whitespace-pre hljs language-{language}">'
        f"{highlight(code, language) if code else ''}</code></div></div></pre>"
    )


def render_answer(markdown_text, empty_code_block=False):
    """Render the topics' Markdown subset into the HTML of a ChatGPT answer."""
    parts = []
    pieces = re.split(r"```(\w*)\n(.*?)\n```", markdown_text.strip(), flags=re.S)
    for index in range(0, len(pieces), 3):
        for block in re.split(r"\n\s*\n", pieces[index].strip()):
            if block:
                parts.append(render_block(block))
        if index + 2 < len(pieces):
            parts.append(render_code_block(pieces[index + 2], pieces[index + 1] or "plaintext"))
    if empty_code_block:
        parts.insert(len(parts) // 2 + 1, render_code_block("", "python"))
    return '<div class="markdown prose w-full break-words dark:prose-invert light">' + "".join(parts) + "</div>"


def render_block(block):
    lines = block.split("\n")
    if all(line.startswith("- ") for line in lines):
        return "<ul>" + "".join(f"<li>{render_inline(line[2:])}</li>" for line in lines) + "</ul>"
    if all(re.match(r"\d+\. ", line) for line in lines):
        return "<ol>" + "".join(f"<li>{render_inline(line.split(' ', 1)[1])}</li>" for line in lines) + "</ol>"
    if len(lines) == 1 and lines[0].startswith("### "):
        return f"<h3>{render_inline(lines[0][4:])}</h3>"
    return "<p>" + "<br>".join(render_inline(line) for line in lines) + "</p>"


def render_page(page_id, items, model, views, title, escape_json=True, json_text=None):
    """A full Next.js page: visible conversation markup plus the __NEXT_DATA__ JSON."""
    content = {"title": title, "avatarUrl": AVATAR, "items": items}
    if model is not None:
        content["model"] = model
    next_data = {
        "props": {
            "pageProps": {
                "id": page_id,
                "content": content,
                "comments": [],
                "views": views,
                "title": title,
                "avatarUrl": AVATAR,
            },
            "__N_SSP": True,
        },
        "page": "/c/[id]",
        "query": {"id": page_id},
        "buildId": BUILD_ID,
        "isFallback": False,
        "gssp": True,
        "scriptLoader": [],
    }
    if json_text is None:
        json_text = json.dumps(next_data, ensure_ascii=False, separators=(",", ":"))
        if escape_json or "</script" in json_text.lower():
            json_text = json_text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    body = "".join(render_visible_turn(item) for item in items if isinstance(item, dict))
    safe_title = html.escape(title)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charSet="utf-8"/>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"/>'
        f"<title>{safe_title} - ShareGPT</title>"
        f'<meta name="description" content="{safe_title} - ShareGPT"/>'
        f'<meta property="og:title" content="{safe_title} - ShareGPT"/>'
        f'<meta property="og:image" content="https://sharegpt.com/api/og?id={page_id}"/>'
        f'<link rel="icon" href="/favicon.png"/><meta name="next-head-count" content="7"/>'
        f'<link rel="stylesheet" href="/_next/static/css/6d7c3a9f1e2b4c5d.css" data-n-g=""/>'
        f'<script src="/_next/static/chunks/webpack-4f2d8b3a1c9e7d60.js" defer=""></script>'
        f'<script src="/_next/static/chunks/main-0ecb9ccfcb6c9b24.js" defer=""></script>'
        f'<script src="/_next/static/{BUILD_ID}/_buildManifest.js" defer=""></script></head>'
        f'<body><div id="__next"><div class="flex flex-col items-center bg-white dark:bg-gray-800 min-h-screen">'
        f'<div class="w-full border-b border-black/10 bg-gray-50 p-4 text-center">'
        f'<h1 class="text-2xl font-semibold">{safe_title}</h1><div class="text-sm text-gray-500">{views} views</div></div>'
        f"{body}"
        f'<div class="py-8 text-center text-xs text-gray-400">Shared with <a href="https://sharegpt.com">ShareGPT</a></div>'
        f'</div></div><script id="__NEXT_DATA__" type="application/json">{json_text}</script></body></html>'
    )


AVATAR = "https://lh3.googleusercontent.com/a/AGNmyxbW3sQm9k2vYtRr1LpD4uNc0eA7fZxHqS2Wg5Kj=s96-c"
BUILD_ID = "q2TxuN0sVw8hC1yZbLk5m"


def render_visible_turn(item):
    value = item.get("value") or ""
    if item.get("from") == "gpt":
        avatar = '<div class="relative h-[30px] w-[30px] rounded-sm bg-[#10a37f] p-1 text-white"></div>'
        shade = " bg-gray-50 dark:bg-[#444654]"
    else:
        avatar = f'<img alt="User" src="{AVATAR}" class="rounded-sm" width="30" height="30"/>'
        value = html.escape(value, quote=False)
        shade = ""
    return (
        f'<div class="group w-full text-gray-800 dark:text-gray-100 border-b border-black/10{shade}">'
        f'<div class="flex gap-4 text-base md:max-w-2xl lg:max-w-xl xl:max-w-3xl p-4 md:py-6 m-auto">'
        f'<div class="w-[30px] flex flex-col relative items-end">{avatar}</div>'
        f'<div class="relative flex w-[calc(100%-50px)] flex-col gap-1 md:gap-3 lg:w-[calc(100%-115px)]">'
        f'<div class="min-h-[20px] flex flex-col items-start gap-4 whitespace-pre-wrap">{value}</div></div></div></div>'
    )


# ----------------------------------------------------------------------------- conversations


class PageFactory:
    """Builds page texts of each kind from one seeded random generator."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.used_ids = set()
        self.kept_conversations = []  # (items, model) of earlier pages, for duplicates

    def new_id(self):
        alphabet = string.ascii_letters + string.digits
        while True:
            page_id = "".join(self.rng.choice(alphabet) for _ in range(7))
            if page_id not in self.used_ids:
                self.used_ids.add(page_id)
                return page_id

    def pick_model(self):
        threshold = self.rng.random()
        for model, share in MODELS:
            threshold -= share
            if threshold < 0:
                return model
        return MODELS[0][0]

    def exchanges_for(self, topic, max_followups, framed=True):
        """(question, answer markdown) pairs: the topic's main question and some follow-ups."""
        question, answer = self.rng.choice(topic["questions"]), topic["answer"]
        if framed:
            question = self.rng.choice(QUESTION_PREFIXES) + question + self.rng.choice(QUESTION_SUFFIXES)
            answer = self.rng.choice(ANSWER_OPENERS) + answer
            closer = self.rng.choice(ANSWER_CLOSERS)
            answer = answer + "\n\n" + closer if closer else answer
        exchanges = [(question, answer)]
        followups = list(topic["followups"])
        self.rng.shuffle(followups)
        exchanges += followups[: self.rng.randint(0, max_followups)]
        if self.rng.random() < 0.15:
            exchanges.append(self.rng.choice(GENERIC_FOLLOWUPS))
        return exchanges

    def long_exchanges(self):
        """Many exchanges across topics, several thousand words in total."""
        target_words = self.rng.randint(1900, 3000)
        topics = self.rng.sample(TOPICS, len(TOPICS))
        exchanges, words = [], 0
        for topic in topics:
            for question, answer in [(topic["questions"][0], topic["answer"])] + list(topic["followups"]):
                exchanges.append((question, answer))
                words += len(question.split()) + len(answer.split())
            if words >= target_words:
                break
        return exchanges

    def to_items(self, exchanges, noise):
        items = []
        for question, answer in exchanges:
            human_value = question
            if noise.get("counter") and self.rng.random() < 0.6:
                total = self.rng.randint(1, 3)
                human_value = f"{self.rng.randint(1, total)} / {total}{human_value}"
            items.append({"from": "human", "value": human_value})
            gpt_value = render_answer(answer, empty_code_block=noise.get("empty_code") and self.rng.random() < 0.5)
            if noise.get("counter") and self.rng.random() < 0.5:
                total = self.rng.randint(1, 3)
                gpt_value = f"{self.rng.randint(1, total)} / {total}" + gpt_value
            if noise.get("copy_chars") and self.rng.random() < 0.6:
                gpt_value += f"Copy{len(answer)} chars / {len(answer.split())} words"
            items.append({"from": "gpt", "value": gpt_value})
        return items

    def random_noise(self):
        return {
            "counter": self.rng.random() < 0.3,
            "copy_chars": self.rng.random() < 0.15,
            "empty_code": self.rng.random() < 0.08,
        }

    def page(self, kind):
        """Return (page_id, page bytes) for one page of the given kind."""
        page_id = self.new_id()
        rng = self.rng
        views = rng.randint(1, 5000)
        model = self.pick_model()
        escape_json = rng.random() < 0.5
        noise = self.random_noise()

        if kind in ("no_next_data", "invalid_json", "no_content", "undecodable_bytes", "invalid_items"):
            return page_id, self.malformed_page(kind, page_id, views)

        if kind == "duplicate" and self.kept_conversations:
            items, model = rng.choice(self.kept_conversations)
            if rng.random() < 0.5:  # same turns, different page noise: still a duplicate once cleaned
                items = [dict(item) for item in items]
                items[0]["value"] = "1 / 1" + items[0]["value"]
            return page_id, self.encode(page_id, items, model, views, escape_json)

        if kind == "long":
            model = "Model: GPT-4" if rng.random() < 0.8 else "Model: Default (GPT-3.5)"
            exchanges = self.long_exchanges()
        elif kind == "foreign":
            exchanges = self.exchanges_for(rng.choice(FOREIGN_TOPICS), max_followups=1, framed=False)
        else:
            exchanges = self.exchanges_for(rng.choice(TOPICS), max_followups=2)
            if rng.random() < 0.3:  # users often move on to a second subject in the same chat
                exchanges += self.exchanges_for(rng.choice(TOPICS), max_followups=1)

        if kind == "blocked_word":
            exchanges.insert(rng.randint(0, len(exchanges)), rng.choice(BLOCKED_EXCHANGES))
        items = self.to_items(exchanges, noise)

        if kind == "leading_gpt":
            items.insert(0, {"from": "gpt", "value": render_answer("Hello! How can I help you today?")})
        elif kind == "trailing_human":
            items.append(
                {
                    "from": "human",
                    "value": rng.choice(["Thanks!", "continue", "Can you explain the second point again?", "ok"]),
                }
            )
        elif kind == "non_alternating":
            position = rng.randrange(0, len(items), 2)
            items.insert(position + 1, {"from": "human", "value": "Also, please keep it short."})
        elif kind == "too_few_turns":
            items = items[:1] if rng.random() < 0.5 else [items[0], {"from": "human", "value": "hello?"}]
        elif kind in ("normal", "foreign", "long"):
            self.kept_conversations.append((items, model))
        return page_id, self.encode(page_id, items, model, views, escape_json)

    def encode(self, page_id, items, model, views, escape_json):
        title = items[0]["value"][:80] if items and items[0]["from"] == "human" else "Shared conversation"
        return render_page(page_id, items, model, views, title, escape_json).encode("utf-8")

    def malformed_page(self, kind, page_id, views):
        items = self.to_items(self.exchanges_for(self.rng.choice(TOPICS), max_followups=1), {})
        title = items[0]["value"]
        if kind == "no_next_data":
            if self.rng.random() < 0.5:
                return (
                    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
                    b"<h1>Checking if the site connection is secure</h1><p>sharegpt.com needs to review "
                    b"the security of your connection before proceeding.</p></body></html>"
                )
            page = render_page(page_id, items, "Model: GPT-4", views, title)
            return page.split('<script id="__NEXT_DATA__"')[0].encode("utf-8")  # saved before the script arrived
        if kind == "invalid_json":
            good = json.dumps({"props": {"pageProps": {"id": page_id, "content": {"items": items}}}})
            broken = good[: len(good) // 2] + "}}"
            return render_page(page_id, items, "Model: GPT-4", views, title, json_text=broken).encode("utf-8")
        if kind == "no_content":
            json_text = json.dumps({"props": {"pageProps": {"statusCode": 404}}, "page": "/_error"})
            return render_page(page_id, [], None, views, "404", json_text=json_text).encode("utf-8")
        if kind == "undecodable_bytes":
            page = render_page(page_id, items, "Model: GPT-4", views, title)
            cut = len(page) // 3
            return page[:cut].encode("utf-8") + b"\xff\xfe\xc3\x28 caf\xe9 " + page[cut:].encode("utf-8")
        # invalid_items: the turn list is not a list of {"from", "value"} strings
        broken_items = [{"from": "human", "value": None}, {"from": "gpt"}] if self.rng.random() < 0.5 else "items"
        json_text = json.dumps(
            {
                "props": {
                    "pageProps": {
                        "id": page_id,
                        "views": views,
                        "content": {"items": broken_items, "model": "Model: GPT-4"},
                    }
                }
            }
        )
        return render_page(page_id, [], None, views, title, json_text=json_text).encode("utf-8")


def plan_kinds(num_pages, rng):
    """Page kinds in a seeded random order, with every special kind present at least once."""
    kinds = []
    for kind, share in KIND_SHARES.items():
        kinds += [kind] * max(1, round(num_pages * share))
    kinds += ["normal"] * max(0, num_pages - len(kinds))
    kinds = kinds[:num_pages]
    rng.shuffle(kinds)
    if "normal" in kinds:  # a duplicate copies an earlier conversation, so start with one
        kinds.insert(0, kinds.pop(kinds.index("normal")))
    return kinds


def generate_corpus(out_dir, num_pages=BUNDLED_PAGE_COUNT, seed=0, show_progress=False):
    """Write `num_pages` pages as `<id>.html` into `out_dir`; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    factory = PageFactory(seed)
    kinds = plan_kinds(num_pages, factory.rng)
    paths = []
    iterator = kinds
    if show_progress:
        from tqdm import tqdm

        iterator = tqdm(kinds, desc="generating pages", unit="page")
    for kind in iterator:
        page_id, page_bytes = factory.page(kind)
        path = out_dir / f"{page_id}.html"
        path.write_bytes(page_bytes)
        paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description="Generate deterministic ShareGPT-format HTML pages.")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="folder for the <id>.html pages")
    parser.add_argument("--num-pages", type=int, default=BUNDLED_PAGE_COUNT, help="how many pages to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same pages")
    args = parser.parse_args()
    paths = generate_corpus(args.out_dir, args.num_pages, args.seed, show_progress=True)
    total_bytes = sum(path.stat().st_size for path in paths)
    print(f"wrote {len(paths)} pages ({total_bytes / 1e6:.1f} MB) to {args.out_dir}")


if __name__ == "__main__":
    main()
