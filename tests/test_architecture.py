"""The package's layers (docs/ARCHITECTURE.md), checked from its imports.

Every ``import`` of a ``my_affectgpt`` module, at module level or inside a function, must go to
the same layer or a lower one, and the modules must not import each other in a loop.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "my_affectgpt"
# lower number = lower layer; a module may import its own layer and the ones below it
LAYERS = {
    "common": 0,
    "processors": 1, "conversation": 1,
    "datasets": 2,
    "models": 3,
    "tasks": 4, "runners": 4, "evaluation": 4, "extraction": 4, "inference": 4, "demo_assets": 4,
}
CLI_LAYER = 5  # command-line entry points (*.cli, __main__) and the package root's import_components


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[-1] in ("cli", "__main__"):
        return CLI_LAYER
    return LAYERS[parts[1]]


def imports_of(path: Path) -> set:
    """The my_affectgpt modules ``path`` imports (a ``from x import name`` of a submodule counts as it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("my_affectgpt"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / (sub.replace(".", "/") + ".py")).is_file() \
                    or (PACKAGE.parent / sub.replace(".", "/")).is_dir()
                found.add(sub if is_module else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("my_affectgpt")}
    return found


def import_graph() -> dict:
    graph = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}
    return {module: deps - {module} for module, deps in graph.items()}


def test_every_module_belongs_to_a_layer():
    for module in import_graph():
        layer(module)  # KeyError names a top-level folder missing from LAYERS


def upward_imports(graph: dict) -> list:
    return sorted(f"{module} (layer {layer(module)}) imports {dep} (layer {layer(dep)})"
                  for module, deps in graph.items() for dep in deps if layer(dep) > layer(module))


def import_cycles(graph: dict) -> list:
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node] & graph.keys():
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
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

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_module_imports_from_a_higher_layer():
    upward = upward_imports(import_graph())
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    cycles = import_cycles(import_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_see_violations():
    """On a made-up graph with one upward import and one loop, both checks fire."""
    graph = {
        "my_affectgpt.datasets.a": {"my_affectgpt.models.b"},
        "my_affectgpt.models.b": {"my_affectgpt.datasets.a"},
    }
    assert upward_imports(graph) == ["my_affectgpt.datasets.a (layer 2) imports my_affectgpt.models.b (layer 3)"]
    assert import_cycles(graph) == [["my_affectgpt.datasets.a", "my_affectgpt.models.b"]]
    assert "my_affectgpt.processors.raw_media" in import_graph()["my_affectgpt.datasets.base_dataset"]
