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
    missing = sorted(declared - set(_locked()) - {"torch"})
    assert not missing, f"run `bash scripts/lock.sh`: requirements.txt lacks {missing}"


def test_lock_never_pulls_cuda_or_an_unpinned_torch():
    locked = _locked()
    assert "torch" not in locked, "torch is installed first by scripts/setup.sh as the pinned CPU wheel"
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
