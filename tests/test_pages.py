"""The static pages in real headless Chromium, opened over file:// as a person would open them.

Each test feeds a page a file through its file input, waits for plotly to draw,
then clicks with the real mouse (3-D points are found by moving the mouse until
plotly reports a hover) and reads what the page shows. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import pytest

from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from visualization import install_plotly
from visualization.pages import EVAL_RESULT_PAGE, VISUALIZER_PAGE, write_standalone_page

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
INJECTION = '<!--<script><img src="x" onerror="window.__injected = true"><script>window.__injected = true</script>'

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"headless Chromium not installed at {CHROMIUM} (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    install_plotly.main([])  # the pages load ../static/plotly.min.js
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert not errors, f"uncaught errors on the page: {errors}"


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


# ---------------------------------------------------------------- conversation map


def conversation_map_data() -> dict:
    """Three clusters of conversations around three centres; one holds a code block and HTML to escape."""
    rng = random.Random(7)
    topics = [
        ("python", "How do I sort a list in Python?"),
        ("baking", "How long do I bake bread?"),
        ("travel", "What should I pack for Norway?"),
    ]
    points = []
    for index in range(60):
        cluster = index % 3
        word, question = topics[cluster]
        centre = [(cluster - 1) * 6.0, 0.0, (cluster % 2) * 4.0]
        answer = f"About {word}: here is how.\n\n```python\nprint('{word}')\n```\n\nAlso {INJECTION}"
        turns = [
            {"from": "human", "role": "Human", "value": f"{question} (#{index})"},
            {"from": "gpt", "role": "Assistant", "value": answer},
        ]
        points.append(
            {
                "index": index,
                "cluster": cluster,
                "title": f"{question} (#{index})",
                "x": centre[0] + rng.uniform(-2, 2),
                "y": centre[1] + rng.uniform(-2, 2),
                "z": centre[2] + rng.uniform(-2, 2),
                "text": "\n\n".join(f"{turn['role']}: {turn['value']}" for turn in turns),
                "turns": turns,
            }
        )
    points[5]["turns"][1]["value"] += "\n\nA rare word: zeppelin."
    points[5]["text"] += "\n\nA rare word: zeppelin."
    clusters = [{"id": c, "size": 20, "keywords": [topics[c][0]]} for c in range(3)]
    return {
        "format": "ochat-visualizer",
        "version": 1,
        "reducer": "umap",
        "seed": 0,
        "clusters": clusters,
        "points": points,
    }


@pytest.fixture
def map_file(tmp_path) -> Path:
    path = tmp_path / "T.visualizer.json"
    path.write_text(json.dumps(conversation_map_data()))
    return path


def open_map(page, data_file: Path) -> None:
    page.goto(VISUALIZER_PAGE.as_uri())
    page.set_input_files("#file-input", str(data_file))
    page.wait_for_function("document.getElementById('plot').data && document.querySelector('#plot canvas')")
    page.wait_for_timeout(300)


def hovered_point_at(page, x: int, y: int) -> int | None:
    page.evaluate("window.__hovered = []")
    page.mouse.move(x, y)
    page.wait_for_timeout(40)
    hovered = page.evaluate("window.__hovered")
    return int(hovered[-1]) if hovered else None


def find_point_under_mouse(page) -> tuple[int, int, int]:
    """Sweep the mouse over the 3-D plot until plotly reports hovering a point; return its centre and index.

    plotly's 3-D scene counts a press as a click only within a few pixels of a
    point's centre, so the centre is found by walking across the hover area.
    """
    page.evaluate("""() => {
        window.__hovered = [];
        window.__mouseX = null;
        window.__firstHoverX = null;
        document.addEventListener('mousemove', e => { window.__mouseX = e.clientX; }, true);
        document.getElementById('plot').on('plotly_hover', e => {
            window.__hovered.push(e.points[0].customdata);
            if (window.__firstHoverX === null) window.__firstHoverX = window.__mouseX;
        });
    }""")
    box = page.locator("#plot").bounding_box()
    left, right = int(box["x"]) + 60, int(box["x"] + box["width"]) - 20
    middle = box["y"] + box["height"] / 2
    rows = sorted(range(int(box["y"]) + 120, int(box["y"] + box["height"]) - 20, 14), key=lambda y: abs(y - middle))
    for y in rows:  # the middle rows first: that is where most points are
        page.evaluate("window.__firstHoverX = null")
        for x in range(left, right, 14):
            page.mouse.move(x, y)
        hint = page.evaluate("window.__firstHoverX")
        if hint is None:
            continue
        for x in range(max(left, int(hint) - 40), right, 3):  # this row has a point near `hint`: find it slowly
            index = hovered_point_at(page, x, y)
            if index is None:
                continue
            xs = [dx for dx in range(x, x + 30, 2) if hovered_point_at(page, dx, y) == index]
            x_centre = (xs[0] + xs[-1]) // 2
            ys = [dy for dy in range(y - 16, y + 16, 2) if hovered_point_at(page, x_centre, dy) == index]
            y_centre = (ys[0] + ys[-1]) // 2
            assert hovered_point_at(page, x_centre, y_centre) == index
            return x_centre, y_centre, index
    raise AssertionError("no point of the 3-D plot could be hovered")


def test_map_draws_one_trace_per_cluster(page, map_file):
    open_map(page, map_file)
    traces = page.evaluate("document.getElementById('plot').data.map(t => [t.name, t.x.length])")
    cluster_traces = [trace for trace in traces if trace[0].startswith("Cluster")]
    assert [count for _, count in cluster_traces] == [20, 20, 20]
    assert "python" in cluster_traces[0][0]
    assert "60 conversations in 3 clusters" in page.inner_text("#summary")
    screenshot(page, "visualizer_loaded.png")


def test_clicking_a_point_shows_that_conversation(page, map_file):
    open_map(page, map_file)
    x, y, index = find_point_under_mouse(page)
    page.wait_for_timeout(100)
    page.mouse.down()  # plotly's 3-D scene reports a click while the button is held over a point
    page.wait_for_timeout(150)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#conversation h2')")
    expected = conversation_map_data()["points"][index]
    assert page.inner_text("#conversation h2") == expected["title"]
    assert page.locator("#conversation .turn").count() == 2
    assert page.inner_text("#conversation pre code").strip().startswith("print(")
    screenshot(page, "visualizer_conversation.png")


def test_conversation_text_cannot_inject_html(page, map_file):
    open_map(page, map_file)
    page.evaluate("document.getElementById('plot').emit('plotly_click', {points: [{customdata: 0}]})")
    assert "<img src=" in page.inner_text("#conversation")  # shown as text
    assert page.locator("#conversation img, #conversation script").count() == 0
    assert page.evaluate("window.__injected") is None


def test_search_highlights_conversations_with_the_word(page, map_file):
    open_map(page, map_file)
    page.fill("#search", "zeppelin")
    page.wait_for_function("document.getElementById('plot').data.at(-1).x.length === 1")
    assert "1 conversation contains" in page.inner_text("#search-results")
    page.click("#search-results button")
    assert page.inner_text("#conversation mark") == "zeppelin"
    assert page.inner_text("#conversation h2") == conversation_map_data()["points"][5]["title"]
    screenshot(page, "visualizer_search.png")


def test_legend_click_hides_a_cluster(page, map_file):
    open_map(page, map_file)
    page.locator(".legend .traces .legendtoggle").nth(1).click()
    page.wait_for_function("document.getElementById('plot').data[1].visible === 'legendonly'")
    visibility = page.evaluate("document.getElementById('plot').data.slice(0, 3).map(t => t.visible)")
    assert visibility[1] == "legendonly" and visibility[0] in (True, None)


def test_map_accepts_a_file_dropped_on_the_page(page, map_file):
    page.goto(VISUALIZER_PAGE.as_uri())
    page.evaluate(
        """(text) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], 'dropped.visualizer.json', {type: 'application/json'}));
        document.body.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""",
        map_file.read_text(),
    )
    page.wait_for_function("document.getElementById('plot').data && document.querySelector('#plot canvas')")
    assert page.inner_text("#summary").startswith("dropped.visualizer.json: 60 conversations")


def test_map_reports_a_broken_file(page, tmp_path, map_file):
    open_map(page, map_file)
    broken = tmp_path / "broken.json"
    broken.write_text('{"points": [ {"x": 1, ')
    page.set_input_files("#file-input", str(broken))
    page.wait_for_selector("#message.message-error")
    assert "broken.json is not valid JSON" in page.inner_text("#message")
    screenshot(page, "visualizer_broken_file.png")

    wrong = tmp_path / "summary.json"
    wrong.write_text(json.dumps({"models": []}))
    page.set_input_files("#file-input", str(wrong))
    page.wait_for_function("document.getElementById('message').textContent.includes('not a visualizer file')")


def test_self_contained_map_page_needs_no_other_file(page, tmp_path):
    standalone = write_standalone_page(VISUALIZER_PAGE, conversation_map_data(), tmp_path / "map.html")
    assert "../static/" not in standalone.read_text()
    page.goto(standalone.as_uri())
    page.wait_for_function("document.getElementById('plot').data && document.querySelector('#plot canvas')")
    assert page.evaluate("document.getElementById('plot').data.length") == 4
    assert page.locator("#message").is_hidden()


# ---------------------------------------------------------------- evaluation results


def write_eval_results(folder: Path) -> list[Path]:
    """summary.json and two review files in the evaluation's formats, with consistent numbers."""
    categories = ["coding", "generic", "math"]
    summary = {"benchmark": "vicuna", "baseline": "gpt-3.5-turbo", "models": []}
    files = []
    for model_number, model in enumerate(["openchat_tiny", "llama-7b"]):
        rows = []
        for question_id in range(1, 7):
            score_model = 5 + (question_id + model_number) % 4
            score_baseline = 7
            verdict = "win" if score_model > score_baseline else "tie" if score_model == score_baseline else "loss"
            rows.append(
                {
                    "question_id": question_id,
                    "category": categories[question_id % 3],
                    "question": f"Question {question_id}: explain {INJECTION} please",
                    "model": model,
                    "baseline": "gpt-3.5-turbo",
                    "answer_model": f"{model} answers question {question_id}.\n\n```\ncode_{question_id}()\n```",
                    "answer_baseline": f"The baseline answers question {question_id}.",
                    "reviews": [
                        {
                            "order": "model_first",
                            "sample": 0,
                            "failed": False,
                            "scores": [score_model, score_baseline],
                            "text": f"Judge, {model} first, question {question_id}.",
                        },
                        {
                            "order": "baseline_first",
                            "sample": 0,
                            "failed": False,
                            "scores": [score_model, score_baseline],
                            "text": f"Judge, baseline first, question {question_id}.",
                        },
                    ],
                    "score_model": score_model,
                    "score_baseline": score_baseline,
                    "verdict": verdict,
                    "conflict": False,
                }
            )
        path = folder / f"vicuna_{model}_vs_gpt-3.5-turbo.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        files.append(path)
        total_model = sum(row["score_model"] for row in rows)
        total_baseline = sum(row["score_baseline"] for row in rows)
        count = {verdict: sum(row["verdict"] == verdict for row in rows) for verdict in ("win", "tie", "loss")}
        summary["models"].append(
            {
                "model": model,
                "score_pct": round(100 * total_model / total_baseline, 1),
                "total_model": total_model,
                "total_baseline": total_baseline,
                "wins": count["win"],
                "ties": count["tie"],
                "losses": count["loss"],
                "failed": 0,
                "judged": len(rows),
                "conflict_rate": 0.0,
                "categories": {
                    category: {"score_pct": 100.0 + 10 * model_number + index, "wins": 1, "ties": 0, "losses": 1}
                    for index, category in enumerate(categories)
                },
            }
        )
    summary_path = folder / "summary.json"
    summary_path.write_text(json.dumps(summary))
    return [summary_path, *files]


def open_eval_page(page, files: list[Path]) -> None:
    page.goto(EVAL_RESULT_PAGE.as_uri())
    page.set_input_files("#file-input", [str(path) for path in files])
    page.wait_for_function("document.getElementById('empty').hidden || document.getElementById('message').textContent")


def test_eval_page_draws_scores_outcomes_and_categories(page, tmp_path):
    files = write_eval_results(tmp_path)
    open_eval_page(page, files)
    page.wait_for_selector("#score-chart .main-svg")
    summary = json.loads(files[0].read_text())
    bars = page.evaluate("document.getElementById('score-chart').data[0].y")
    assert bars == [entry["score_pct"] for entry in summary["models"]]
    outcome_traces = page.evaluate("document.getElementById('outcome-chart').data.map(t => [t.name, t.y])")
    assert outcome_traces[0] == ["wins", [entry["wins"] for entry in summary["models"]]]
    categories = page.evaluate("document.getElementById('category-chart').data[0].x")
    assert categories == ["coding", "generic", "math"]
    assert page.locator("#questions-table tbody tr").count() == 12
    assert page.locator("#message").is_hidden()
    screenshot(page, "eval_results_loaded.png")


def test_clicking_a_question_shows_answers_and_both_reviews(page, tmp_path):
    open_eval_page(page, write_eval_results(tmp_path))
    page.select_option("#filter-model", "llama-7b")
    assert page.locator("#questions-table tbody tr").count() == 6
    page.locator("#questions-table tbody tr", has_text="Question 4:").click()
    details = page.inner_text("#details")
    assert "llama-7b answers question 4." in details
    assert "The baseline answers question 4." in details
    assert "Judge, llama-7b first, question 4." in details
    assert "Judge, baseline first, question 4." in details
    assert page.inner_text("#details .answer-model pre code").strip() == "code_4()"
    assert "<img src=" in details and page.locator("#details img, #details script").count() == 0
    assert page.evaluate("window.__injected") is None
    screenshot(page, "eval_results_question.png")


def test_eval_page_names_the_broken_file_and_line(page, tmp_path):
    files = write_eval_results(tmp_path)
    lines = files[1].read_text().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    files[1].write_text("\n".join(lines) + "\n")
    open_eval_page(page, files)
    message = page.inner_text("#message")
    assert f"{files[1].name}, line 3, is not valid JSON" in message
    assert not page.locator("#summary-section").is_hidden()  # the good files still show
    screenshot(page, "eval_results_broken_file.png")


def test_eval_page_rejects_a_file_of_the_wrong_kind(page, tmp_path):
    wrong = tmp_path / "T.visualizer.json"
    wrong.write_text(json.dumps(conversation_map_data()))
    open_eval_page(page, [wrong])
    assert "neither a summary" in page.inner_text("#message")
    assert page.locator("#empty").is_visible()


def test_eval_page_skips_call_logs_and_answer_files_with_a_note(page, tmp_path):
    files = write_eval_results(tmp_path)
    call_log = tmp_path / "vicuna_llama-7b_vs_gpt-3.5-turbo.calls.jsonl"
    call_log.write_text(
        json.dumps(
            {
                "question_id": 1,
                "order": "model_first",
                "sample": 0,
                "text": "8 7",
                "scores": [8, 7],
                "failed": False,
                "attempts": 1,
            }
        )
        + "\n"
    )
    answers = tmp_path / "vicuna_llama-7b.jsonl"
    answers.write_text(json.dumps({"question_id": 1, "model": "llama-7b", "text": "An answer."}) + "\n")
    open_eval_page(page, [*files, call_log, answers])
    notes = page.inner_text("#notes")
    assert "call log" in notes and "answers file" in notes
    assert page.locator("#message").is_hidden()
    assert page.locator("#questions-table tbody tr").count() == 12


def test_self_contained_eval_report_shows_the_results(page, tmp_path):
    import subprocess
    import sys

    results = tmp_path / "eval_results"
    (results / "reviews").mkdir(parents=True)
    for path in write_eval_results(results / "reviews"):
        if path.name == "summary.json":
            path.rename(results / "summary.json")
    out = tmp_path / "report.html"
    subprocess.run(
        [sys.executable, "-m", "visualization.eval_report", "--results-dir", str(results), "--html", str(out)],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    page.goto(out.as_uri())
    page.wait_for_selector("#score-chart .main-svg")
    assert page.locator("#questions-table tbody tr").count() == 12
    assert not math.isnan(page.evaluate("document.getElementById('score-chart').data[0].y[0]"))


def write_mt_bench_and_alpaca_summaries(folder: Path) -> list[Path]:
    """MT-bench judgments and AlpacaEval annotations in the evaluation's formats, summarized by evaluation.summarize."""
    from evaluation.summarize import main as summarize

    folder.mkdir(parents=True, exist_ok=True)
    single, pair = [], []
    for model, questions in (("openchat_tiny", 24), ("llama-7b", 5)):
        for question_id in range(1, questions + 1):
            for turn in (1, 2):
                score = -1 if (question_id, turn) == (3, 2) else 1 + (question_id * turn + len(model)) % 10
                single.append(
                    {
                        "question_id": question_id,
                        "model": model,
                        "judge": ["gpt-4", "single-v1"],
                        "user_prompt": "...",
                        "judgment": f"Rating: [[{score}]]",
                        "score": score,
                        "turn": turn,
                        "tstamp": 0.0,
                        "category": "writing",
                    }
                )
                winners = ["model_1", "model_2", "tie"]
                pair.append(
                    {
                        "question_id": question_id,
                        "model_1": model,
                        "model_2": "gpt-3.5-turbo",
                        "g1_winner": winners[question_id % 3],
                        "g2_winner": winners[(question_id * turn) % 3],
                        "judge": ["gpt-4", "pair-v2"],
                        "turn": turn,
                        "tstamp": 0.0,
                        "category": "writing",
                    }
                )
    (folder / "gpt-4_single.jsonl").write_text("".join(json.dumps(row) + "\n" for row in single))
    (folder / "gpt-4_pair.jsonl").write_text("".join(json.dumps(row) + "\n" for row in pair))
    annotations = [
        {
            "instruction": f"i{number}",
            "output_1": "r",
            "generator_1": "gpt4_turbo",
            "output_2": "m",
            "generator_2": "openchat_tiny",
            "annotator": "gpt-4",
            "raw_completion": {},
            "order_preference": {"reference_first": 2.0, "model_first": 1.0 + number % 2},
            "preference": [1.0, 1.5, 2.0][number % 3],
        }
        for number in range(30)
    ]
    (folder / "alpaca_eval_openchat_tiny_annotations.json").write_text(json.dumps(annotations))
    summarize(["--input_path", str(folder), "--seed", "0"])
    return [folder / "summary_mt_bench.json", folder / "summary_alpaca_eval.json"]


def test_eval_page_shows_mt_bench_and_alpaca_summaries_with_intervals_and_counts(page, tmp_path):
    files = write_mt_bench_and_alpaca_summaries(tmp_path)
    mt_bench = json.loads(files[0].read_text())
    open_eval_page(page, files)
    page.wait_for_selector("#mt-bench-chart .main-svg")
    page.wait_for_selector("#alpaca-chart .main-svg")
    assert page.locator("#message").is_hidden() and page.locator("#summary-section").is_hidden()
    means = page.evaluate("document.getElementById('mt-bench-chart').data[0].y")
    assert means == [entry["mean"] for entry in mt_bench["single"]["models"]]
    error_bars = page.evaluate("document.getElementById('mt-bench-chart').data[0].error_y")
    first = mt_bench["single"]["models"][0]
    assert error_bars["array"][0] == pytest.approx(first["mean_ci95"][1] - first["mean"])
    rows = page.locator("#mt-bench-single-table tbody tr")
    assert rows.count() == 2
    tiny = rows.filter(has_text="openchat_tiny").inner_text()
    assert "24" in tiny and "1 of 48" in tiny and "not meaningful" not in tiny  # judged, failed of calls
    assert "not meaningful" in rows.filter(has_text="llama-7b").inner_text()
    pair_rows = page.locator("#mt-bench-pair-table tbody tr")
    assert pair_rows.count() == 2 and "gpt-3.5-turbo" in page.inner_text("#mt-bench-pair-title")
    alpaca = page.inner_text("#alpaca-table")
    assert "50.0" in alpaca and "30" in alpaca and "gpt4_turbo" in page.inner_text("#alpaca-title")
    screenshot(page, "eval_results_mt_bench.png")


def test_self_contained_eval_report_bundles_every_summary(page, tmp_path):
    import subprocess
    import sys

    results = tmp_path / "eval_results"
    write_mt_bench_and_alpaca_summaries(results)
    out = tmp_path / "report.html"
    subprocess.run(
        [sys.executable, "-m", "visualization.eval_report", "--results_dir", str(results), "--html", str(out)],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    page.goto(out.as_uri())
    page.wait_for_selector("#mt-bench-chart .main-svg")
    assert page.locator("#alpaca-block").is_visible() and page.locator("#mt-bench-pair-table tbody tr").count() == 2
