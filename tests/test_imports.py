"""The package's import graph: no module imports itself through others, and none imports another's private name."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted((SRC / "zoofit").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = ast.parse(path.read_text(encoding="utf-8"))
    return trees


def _imports(name: str, tree: ast.Module, known: set[str]) -> dict[str, list[str]]:
    """The package's modules ``name`` imports at its top level or in functions (``TYPE_CHECKING`` imports left
    out: they never run), each with the names taken from it."""
    found: dict[str, list[str]] = {}
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    found.setdefault(alias.name, [])
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in known:
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if target in known:  # a submodule
                    found.setdefault(target, [])
                else:
                    found.setdefault(node.module, []).append(alias.name)
    found.pop(name, None)
    return found


def _graph() -> dict[str, dict[str, list[str]]]:
    trees = _modules()
    return {name: _imports(name, tree, set(trees)) for name, tree in trees.items()}


def _cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One circle of the graph (``a -> b -> ... -> a``), or None. A package's ``__init__`` importing its own
    modules is no circle of concern, so edges into a package from inside it are left out."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, stack.append(node)
        for target in graph.get(node, {}):
            if node.startswith(target + "."):  # a module importing (a name of) its own package
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[node], _ = 2, stack.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_import_graph_of_src_has_no_circle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


def test_no_module_imports_another_module_s_private_name() -> None:
    private = [
        f"{name} imports {target}.{taken}"
        for name, targets in _graph().items()
        for target, names in targets.items()
        for taken in names
        if taken.startswith("_") and not taken.endswith("__")
    ]
    assert not private, "; ".join(private)
