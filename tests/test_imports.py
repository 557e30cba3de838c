"""The package's import graph: no module imports itself through others (type-checking imports counted), none
imports a module of a higher layer (:data:`LAYERS`), and none imports another's private name."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

#: The layers of ``src/zoofit``, lowest first: a module imports only from its own layer and those below it. A
#: module's layer is that of the longest name here that it is or lies in. Foundations; the settings and services
#: every stage uses; then the pipeline's stages in the order each builds on the last; its results; the method
#: end to end; what runs it many times, ships it and shows it; the command line; the package's own names.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("zoofit.errors", "zoofit.checks", "zoofit.layout", "zoofit.progress", "zoofit.registry", "zoofit.lazy"),
    ("zoofit.settings",),
    ("zoofit.sweep_config", "zoofit.estimator", "zoofit.budget", "zoofit.device", "zoofit.store", "zoofit.execute"),
    ("zoofit.data",),
    ("zoofit.zoo",),
    ("zoofit.evaluate",),
    ("zoofit.ensemble",),
    ("zoofit.rank",),
    ("zoofit.result", "zoofit.replay"),
    ("zoofit.finetune",),
    ("zoofit.members",),
    ("zoofit.robustness",),
    ("zoofit.labelling",),
    ("zoofit.distillation",),
    ("zoofit.pipeline",),
    ("zoofit.bench",),
    ("zoofit.export", "zoofit.export_formats", "zoofit.report"),
    ("zoofit.cli",),
    ("zoofit",),
)


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted((SRC / "zoofit").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = ast.parse(path.read_text(encoding="utf-8"))
    return trees


def _imports(name: str, tree: ast.Module, known: set[str]) -> dict[str, list[str]]:
    """The package's modules ``name`` imports anywhere (at its top level, in functions, for type checking alone),
    each with the names taken from it."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(tree):
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


def test_the_import_graph_of_src_has_no_circle_even_counting_type_checking_imports() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


def _layer(module: str) -> int:
    """The index in :data:`LAYERS` of ``module``'s layer."""
    owners = [(len(name), index) for index, names in enumerate(LAYERS) for name in names
              if module == name or module.startswith(name + ".")]  # fmt: skip
    assert owners, f"{module} lies in no layer of LAYERS; add it"
    return max(owners)[1]


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = [
        f"{name} (layer {_layer(name)}) imports {target} (layer {_layer(target)})"
        for name, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(name)
    ]
    assert not upward, "; ".join(upward)


def test_the_layers_hold_every_module_once() -> None:
    names = [name for layer in LAYERS for name in layer]
    assert len(names) == len(set(names)) and all(_layer(module) >= 0 for module in _graph())


def test_no_module_imports_another_module_s_private_name() -> None:
    private = [
        f"{name} imports {target}.{taken}"
        for name, targets in _graph().items()
        for target, names in targets.items()
        for taken in names
        if taken.startswith("_") and not taken.endswith("__")
    ]
    assert not private, "; ".join(private)
