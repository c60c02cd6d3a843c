"""The package's import graph: no cycles, and the stages import in the direction data flows.

Read from the source with ast, function-level imports included (a lazy import
inside a function only hides a cycle), ``if TYPE_CHECKING:`` blocks left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.common import REPO

PACKAGE = REPO / "pca_batch"


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path) -> set[str]:
    """The pca_batch modules ``name`` imports, anywhere in it but under ``if TYPE_CHECKING:``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in MODULES else base)
            pending.append(child)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle once, as the path that closes it (depth-first, colouring)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_graph_is_read() -> None:
    assert "pca_batch.manifest.load" in GRAPH["pca_batch.cli.apply"]
    assert "pca_batch.pki.csr" in GRAPH["pca_batch.manifest.csrpool"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycle_among_the_package_modules() -> None:
    assert _cycles(GRAPH) == []


def test_only_the_command_line_reaches_the_manifest_loader() -> None:
    """Run-time stages (plan, run, report, backends) get loaded records, never the loader's code."""
    outside = {
        name: sorted(m for m in imports if m.startswith("pca_batch.manifest"))
        for name, imports in GRAPH.items()
        if not name.startswith(("pca_batch.manifest", "pca_batch.cli"))
    }
    assert {name: found for name, found in outside.items() if found} == {}


FACTS = {"pca_batch.errors", "pca_batch.acmpca", "pca_batch.pki.algorithms"}  # names and limits, no behaviour


def test_the_records_depend_on_nothing_but_the_errors_and_the_facts() -> None:
    assert GRAPH["pca_batch.model"] <= FACTS
    for fact in FACTS:
        assert GRAPH[fact] == set(), f"{fact} is a leaf: it imports nothing of pca_batch"
