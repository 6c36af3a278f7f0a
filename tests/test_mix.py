"""mix: ratios and counts per source, upsampling, determinism, the CLI's report."""

import collections
import json
import subprocess
import sys
from pathlib import Path

from data_pipeline.mix import SourceSpec, mix, parse_source
from tests.helpers.repo import run_module


def conversations(prefix, count):
    return [
        {
            "id": f"{prefix}{index}",
            "model": None,
            "views": None,
            "items": [{"from": "human", "value": f"q {prefix}{index}"}, {"from": "gpt", "value": "a"}],
            "hash": f"{prefix}{index}",
        }
        for index in range(count)
    ]


def test_source_spec_reads_count_weight_and_bare_paths():
    assert parse_source("a=x.json:500") == SourceSpec("a", Path("x.json"), count=500)
    assert parse_source("a=x.json:0.25").weight == 0.25
    assert parse_source("a=dir:with:colons/x.json").path.name == "x.json"
    assert parse_source("a=x.json") == SourceSpec("a", Path("x.json"))


def test_weights_and_counts_give_the_asked_amounts_and_label_sources():
    sources = [
        (SourceSpec("sharegpt", "s.json", weight=0.5), conversations("s", 100)),
        (SourceSpec("alpaca", "a.json", count=30), conversations("a", 200)),
        (SourceSpec("hh", "h.json"), conversations("h", 10)),
    ]
    mixed, report = mix(sources, seed=3)
    by_source = collections.Counter(c["source"] for c in mixed)
    assert by_source == {"sharegpt": 50, "alpaca": 30, "hh": 10}
    assert len({c["id"] for c in mixed}) == 90  # below each source's size nothing repeats
    assert [row["taken"] for row in report["sources"]] == [50, 30, 10] and report["total"] == 90
    assert abs(sum(row["share"] for row in report["sources"]) - 1) < 1e-3
    assert [c["id"] for c in mixed[:20]] != sorted(c["id"] for c in mixed[:20])  # shuffled together


def test_upsampling_repeats_every_conversation_as_evenly_as_possible():
    mixed, report = mix([(SourceSpec("small", "s.json", weight=2.5), conversations("s", 4))], seed=0)
    counts = collections.Counter(c["id"] for c in mixed)
    assert len(mixed) == 10 and sorted(counts.values()) == [2, 2, 3, 3]
    assert report["sources"][0]["repeated"] == 6


def test_same_seed_same_mix_other_seed_other_mix():
    sources = [
        (SourceSpec("a", "a.json", count=20), conversations("a", 50)),
        (SourceSpec("b", "b.json", weight=0.4), conversations("b", 50)),
    ]
    first = [c["id"] for c in mix(sources, seed=7)[0]]
    assert first == [c["id"] for c in mix(sources, seed=7)[0]]
    assert first != [c["id"] for c in mix(sources, seed=8)[0]]


def test_cli_writes_mix_and_report(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(conversations("a", 40)))
    (tmp_path / "b.json").write_text(json.dumps(conversations("b", 10)))
    out = tmp_path / "mixed.json"
    result = run_module(
        "data_pipeline.mix",
        "--in",
        f"a={tmp_path / 'a.json'}:0.5",
        f"b={tmp_path / 'b.json'}:15",
        "--out-file",
        str(out),
        "--seed",
        "1",
    )
    mixed = json.loads(out.read_text())
    report = json.loads((tmp_path / "mixed.report.json").read_text())
    assert collections.Counter(c["source"] for c in mixed) == {"a": 20, "b": 15}
    assert [(row["name"], row["asked"], row["taken"]) for row in report["sources"]] == [
        ("a", "weight 0.5", 20),
        ("b", "count 15", 15),
    ]
    assert "total" in result.stdout and "35" in result.stdout


def test_cli_names_a_file_that_is_not_a_conversation_list(tmp_path):
    (tmp_path / "bad.json").write_text('{"items": 1}')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_pipeline.mix",
            "--in",
            f"x={tmp_path / 'bad.json'}",
            "--out_file",
            str(tmp_path / "o.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "not a list of clean conversations" in result.stderr
    assert not (tmp_path / "o.json").exists()
