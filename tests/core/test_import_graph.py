"""The package's import graph: no cycle between modules, imports point down the layers, and a capability uses
another only through its public API (the package itself). Every import counts, also those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "lmaudit"

# Lower layers never import higher ones (docs/architecture.md draws the same picture).
LAYERS = {"core": 0, "data": 1, "models": 2, "tasks": 3, "runner": 4, "interop": 6, "testing": 6, "cli": 7}
CAPABILITY_LAYER = 5  # every other top-level package
# Submodules a capability documents as public beside its package (imported on their own to keep torch lazy).
PUBLIC_SUBMODULES = {"lmaudit.contamination.mink"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, node, path.name == "__init__.py")
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                if target.startswith("lmaudit") and target in modules and target != name:
                    graph[name].add(target)
    return graph


def _layer(module: str) -> tuple[str, int]:
    if module.endswith("__main__"):  # `python -m` entry points: nothing imports them
        return module, max(LAYERS.values()) + 1
    top = module.split(".")[1] if "." in module else ""
    return top, LAYERS.get(top, CAPABILITY_LAYER)


def test_the_graph_sees_the_imports_it_should():
    graph = import_graph()
    assert "lmaudit.runner.session" in graph["lmaudit.runner.evaluate"]
    assert "lmaudit.core.errors" in graph["lmaudit.models.base"]
    assert len(graph) > 100


def test_no_import_cycle_between_modules():
    graph = import_graph()
    # Packages import their own submodules in __init__; a submodule importing its package's __init__ back would
    # be a cycle, and so would any longer loop. Tarjan's strongly connected components find them all.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for child in graph[node]:
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == [], f"import cycles: {cycles}"


def test_imports_point_down_and_capabilities_meet_through_their_public_api():
    problems = []
    for module, targets in import_graph().items():
        top, layer = _layer(module)
        for target in targets:
            target_top, target_layer = _layer(target)
            if target_top == top or not target_top:
                continue
            if target_layer > layer:
                problems.append(f"{module} (layer {layer}) imports {target} (layer {target_layer})")
            elif layer == target_layer == CAPABILITY_LAYER and target != f"lmaudit.{target_top}" \
                    and target not in PUBLIC_SUBMODULES:
                problems.append(f"{module} reaches into {target}; use lmaudit.{target_top}'s public API")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("name", ["lmaudit.cli.main", "lmaudit.cli.options"])
def test_the_cli_start_up_imports_no_torch(name):
    import subprocess
    import sys

    code = f"import sys, {name}; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False", f"importing {name} imports torch"
