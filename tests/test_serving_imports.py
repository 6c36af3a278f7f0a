"""The HTTP process's layers import without torch: the types crossing to the engine are pure Python, and the
engine, its replica worker and the grammar checker load only when replicas start or a response format arrives."""

from __future__ import annotations

import subprocess
import sys

FRONT_MODULES = (
    "ochat.serving.openai_api_server",
    "ochat.serving.http_app",
    "ochat.serving.http_middlewares",
    "ochat.serving.http_connections",
    "ochat.serving.chat_service",
    "ochat.serving.replica_pool",
    "ochat.serving.metrics",
    "ochat.serving.protocol",
    "ochat.serving.responses",
    "ochat.serving.detokenize",
    "ochat.serving.engine_types",
)


def test_the_http_front_imports_without_torch():
    probe = f"import sys\nfor name in {FRONT_MODULES!r}:\n    __import__(name)\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
