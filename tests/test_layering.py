"""The import rules of ARCHITECTURE.md: no circles, nothing imports upwards, entry files stay readable."""

from __future__ import annotations

import ast
import os

from tests.helpers.repo import REPO_ROOT

PACKAGES = ("ochat", "data_pipeline", "evaluation", "visualization")


def _modules() -> dict[str, str]:
    modules = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(REPO_ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    module = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, ".")
                    modules[module.removesuffix(".__init__")] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module → project modules it imports, at any depth of the file (imports inside functions count too)."""
    modules, graph = _modules(), {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    imported.add(name if name in modules else node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        graph[module] = {name for name in imported if name in modules and name != module}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_the_circle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_circles(graph) == [["a", "b", "c"]]


def test_no_module_imports_another_that_imports_it_back():
    assert import_circles(import_graph()) == []


def test_nothing_imports_upwards():
    upward = {
        "data_pipeline": ("evaluation", "visualization"),
        "ochat": ("data_pipeline", "evaluation", "visualization"),
    }
    wrong = [
        (module, target)
        for module, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] in upward.get(module.split(".")[0], ())
    ]
    assert wrong == []


def test_entry_files_stay_short_enough_to_read():
    limits = {"ochat/training_deepspeed": 300, "data_pipeline": 400}
    too_long = []
    for folder, limit in limits.items():
        for name in os.listdir(os.path.join(REPO_ROOT, folder)):
            if name.endswith(".py"):
                with open(os.path.join(REPO_ROOT, folder, name), encoding="utf-8") as handle:
                    lines = sum(1 for _ in handle)
                if lines > limit:
                    too_long.append((f"{folder}/{name}", lines))
    assert too_long == []
