"""Imports point one way and never loop, in all four packages (DESIGN.md, "Layout").

The graph is read from the source (ast), not by importing: every ``import`` and
``from ... import`` counts wherever it is written (module level or inside a function,
i.e. lazy imports too), except under ``if TYPE_CHECKING:``, which never runs.
``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to
``pkg``.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Each package's folder, and the packages it may import (events <- projections <- services,
#: events <- sdk, and the services may use the SDK's models).
PACKAGES = {
    "cairn_events": ("events", frozenset()),
    "cairn_projections": ("projections", frozenset({"cairn_events"})),
    "cairn": ("sdk", frozenset({"cairn_events"})),
    "cairn_services": (
        "services",
        frozenset({"cairn_events", "cairn_projections", "cairn"}),
    ),
}


def module_files() -> dict[str, Path]:
    """Every module of the four packages by dotted name (a package by its ``__init__``)."""
    found: dict[str, Path] = {}
    for package, (folder, _) in PACKAGES.items():
        for path in sorted((ROOT / folder / package).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = module_files()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of a module that can run (not those under TYPE_CHECKING)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(module: str) -> set[str]:
    """The modules of the four packages that ``module`` imports (by name, resolved)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = module.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            prefix = ".".join([*base, node.module] if node.module else base)
        else:
            prefix = node.module or ""
        for alias in node.names:
            full = f"{prefix}.{alias.name}"
            targets.add(full if full in MODULES else prefix)
    return {target for target in targets if target in MODULES and target != module}


GRAPH = {module: imports_of(module) for module in MODULES}


def package_of(module: str) -> str:
    return module.split(".", 1)[0]


def test_the_walk_sees_every_kind_of_import() -> None:
    """Guards the walker itself, on imports these modules are known to make."""
    assert {package_of(module) for module in MODULES} == set(PACKAGES)
    assert "cairn.orchestrator" in GRAPH["cairn.pipelines"]  # lazy, inside a method
    assert {"cairn.executor", "cairn_events"} <= GRAPH["cairn.orchestrator"]  # relative, absolute
    assert "cairn.steps" not in GRAPH["cairn.composition"]  # only under TYPE_CHECKING
    assert any(
        package_of(target) == "cairn_events"
        for module, targets in GRAPH.items()
        if package_of(module) == "cairn_projections"
        for target in targets
    )


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_packages_import_only_the_packages_below_them(package: str) -> None:
    allowed = PACKAGES[package][1] | {package}
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if package_of(module) == package
        for target in targets
        if package_of(target) not in allowed
    )
    assert wrong == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

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
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
