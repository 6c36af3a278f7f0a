"""clean_sharegpt on Ray tasks: a local 2-CPU cluster started here gives the local pool's output exactly."""

import json
import os

import pytest

from data_pipeline.clean_sharegpt import clean_pages
from data_pipeline.conversation_filters import ConversationFilters
from data_pipeline.sharegpt_page import record_from_page
from tests.helpers.repo import EXAMPLES_DIR, REPO_ROOT, run_module

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray_cluster():
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": REPO_ROOT}}
    )
    yield
    ray.shutdown()


@pytest.mark.timeout(300)
def test_ray_backend_output_equals_the_local_pool_on_pages_a_dump_and_filters(tmp_path, local_ray_cluster):
    pages = sorted(
        os.path.join(EXAMPLES_DIR, "ShareGPT", name) for name in os.listdir(os.path.join(EXAMPLES_DIR, "ShareGPT"))
    )[:160]
    records = [record for record in (record_from_page(open(page, "rb").read()) for page in pages[:80]) if record]
    dump = tmp_path / "zz.json"
    dump.write_text(json.dumps([{**record, "id": f"d{index}"} for index, record in enumerate(records)]))
    inputs = [*pages, dump]

    def run(**backend):
        filters = ConversationFilters(languages=("en",), near_dup_threshold=0.8)
        return clean_pages(inputs, num_workers=2, filters=filters, **backend)

    local_conversations, local_report = run()
    ray_conversations, ray_report = run(ray=True)
    assert ray_conversations == local_conversations
    assert ray_report == local_report
    assert local_report["dropped"].get("near_duplicate") and local_report["languages"]


@pytest.mark.timeout(300)
def test_cli_joins_a_running_cluster_by_address_and_writes_the_same_files(tmp_path, local_ray_cluster):
    address = ray.get_runtime_context().gcs_address
    in_dir = os.path.join(EXAMPLES_DIR, "ShareGPT")
    run_module("data_pipeline.clean_sharegpt", "--in_dir", in_dir, "--out_file", str(tmp_path / "local.json"))
    run_module(
        "data_pipeline.clean_sharegpt",
        "--in_dir",
        in_dir,
        "--out_file",
        str(tmp_path / "ray.json"),
        "--ray_address",
        address,
    )
    assert (tmp_path / "ray.json").read_bytes() == (tmp_path / "local.json").read_bytes()
    assert (tmp_path / "ray.report.json").read_bytes() == (tmp_path / "local.report.json").read_bytes()
