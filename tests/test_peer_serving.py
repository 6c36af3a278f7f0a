"""benchmarks/peer_serving.py's pure parts: the roofline arithmetic, the tables, llama-server's command line and
the options. Nothing here builds llama.cpp or starts a server."""

from __future__ import annotations

import pytest

from benchmarks.peer_serving import (
    build_parser,
    decode_step_bytes,
    format_ratios,
    format_table,
    kv_bytes_per_token,
    llama_cpp_source,
    llama_server_command,
    roofline_tokens_per_s,
    slot_context,
)


def row(server, clients, tokens_per_s, latency_s, roofline=1000.0):
    return {
        "server": server,
        "concurrency": clients,
        "requests": 2 * clients,
        "tokens_per_s": tokens_per_s,
        "ttft_p50": latency_s,
        "ttft_p95": 2 * latency_s,
        "itl_p50": latency_s / 10,
        "itl_p95": latency_s / 5,
        "roofline_tokens_per_s": roofline,
    }


def test_kv_bytes_per_token_counts_keys_and_values_of_every_layer():
    # SmolLM2-135M: 30 layers, 3 KV heads of 64; f16 as llama.cpp caches them
    assert kv_bytes_per_token(30, 3, 64, 2) == 30 * 3 * 64 * 2 * 2 == 23040


def test_a_decode_step_moves_the_weights_once_and_each_rows_cache():
    assert decode_step_bytes(1000, 4, 10.0, 8) == 1000 + 4 * 10 * 8


def test_the_roofline_is_clients_times_bandwidth_over_step_bytes():
    # 500 MB of weights, no KV, 10 GB/s: 20 steps a second, one token per client each
    assert roofline_tokens_per_s(500_000_000, 1, 0, 0, 10e9) == pytest.approx(20)
    assert roofline_tokens_per_s(500_000_000, 8, 0, 0, 10e9) == pytest.approx(160)
    # the KV cache's share grows with the clients, so the limit grows less than linearly
    assert roofline_tokens_per_s(500_000_000, 64, 100, 46080, 10e9) < 64 * 20


def test_a_slot_holds_prompt_and_completion_rounded_up():
    assert slot_context(40, 64) == 256
    assert slot_context(200, 64) == 512


def test_llama_server_gets_threads_slots_and_their_whole_context():
    command = llama_server_command("/bin/llama-server", "m.gguf", 8080, threads=2, slots=64, slot_context=256)
    options = dict(zip(command[1::2], command[2::2]))
    assert command[0] == "/bin/llama-server"
    assert options["--threads"] == options["--threads-batch"] == "2"
    assert options["--parallel"] == "64"
    assert options["--ctx-size"] == str(64 * 256)
    assert options["--host"] == "127.0.0.1" and options["--port"] == "8080"


def test_the_table_has_one_line_per_row_with_the_roofline_fraction():
    lines = format_table([row("llama.cpp-q4_1", 1, 250.0, 0.05, roofline=500.0)])
    assert len(lines) == 3
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert cells[:4] == ["llama.cpp-q4_1", "1", "2", "250.0"]
    assert cells[4] == "50.0" and cells[5] == "100.0"  # TTFT in ms
    assert cells[-1] == "50.0%"


def test_ratios_pair_every_ochat_row_with_every_llama_cpp_row_at_the_same_clients():
    rows = [
        row("llama.cpp-q4_1", 1, 200.0, 0.02),
        row("llama.cpp-f32", 1, 100.0, 0.04),
        row("ochat-f32", 1, 50.0, 0.08),
        row("ochat-f32", 8, 400.0, 0.1),  # no peer at 8 clients: no line
    ]
    lines = format_ratios(rows)[2:]
    assert len(lines) == 2
    assert lines[0].startswith("| 1 | ochat-f32 / llama.cpp-q4_1 | 0.25x | 4.00x")
    assert lines[1].startswith("| 1 | ochat-f32 / llama.cpp-f32 | 0.50x | 2.00x")


def test_a_ratio_over_nothing_is_not_a_number():
    lines = format_ratios([row("llama.cpp-f32", 1, 0.0, 0.04), row("ochat-f32", 1, 50.0, 0.08)])
    assert "nanx" in lines[2]


def test_default_options_measure_four_client_counts_on_three_servers():
    args = build_parser().parse_args([])
    assert args.concurrency == [1, 8, 32, 64]
    assert args.servers == ["llama.cpp-q4_1", "llama.cpp-f32", "ochat-f32"]
    assert args.build_dir.endswith("benchmarks/_work/llama.cpp")
    assert args.threads >= 1 and args.max_tokens > 0


def test_options_take_either_spelling_and_pass_the_rest_to_ochat():
    args = build_parser().parse_args(
        ["--llama-server", "/x/llama-server", "--concurrency", "1", "8", "--ochat_args", "--max_queue", "9"]
    )
    assert args.llama_server == "/x/llama-server"
    assert args.concurrency == [1, 8]
    assert args.ochat_args == ["--max_queue", "9"]


def test_the_converter_is_found_in_the_tree_the_binary_was_built_in(tmp_path):
    tree = tmp_path / "llama.cpp"
    (tree / "build" / "bin").mkdir(parents=True)
    (tree / "convert_hf_to_gguf.py").write_text("")
    binary = tree / "build" / "bin" / "llama-server"
    binary.write_text("")
    assert llama_cpp_source(str(binary)) == str(tree)
    assert llama_cpp_source(str(tmp_path / "elsewhere" / "llama-server")) is None
