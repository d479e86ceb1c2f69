"""The import graph of `stack/` and `conformance/`, read from the source with `ast`.

Every import counts, at run time or under TYPE_CHECKING, at module level or inside a
function: a cycle that only the type checker sees still ties the modules together.

`python3 -m tests.import_graph` prints the cycles; tests/test_layering.py asserts none.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("stack", "conformance", "agent_protocol")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        if (ROOT / package).is_dir():
            for path in sorted((ROOT / package).rglob("*.py")):
                found[module_name(path)] = path
    return found


def _imported_names(path: Path, name: str) -> Iterator[str]:
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            yield stem
            yield from (f"{stem}.{alias.name}" for alias in node.names)


@functools.cache
def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a `from a import b` of a module b
    counts as importing a.b)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = {t for t in _imported_names(path, name) if t in known and t != name}
        edges[name] = targets
    return edges


def collapse(edges: dict[str, set[str]], depth: int, prefix: str) -> dict[str, set[str]]:
    """The graph between the units named by the first `depth` parts of names under
    `prefix` (e.g. the subpackages of conformance)."""

    def unit(name: str) -> str:
        return ".".join(name.split(".")[:depth])

    collapsed: dict[str, set[str]] = {}
    for source, targets in edges.items():
        if not source.startswith(prefix):
            continue
        for target in targets:
            if target.startswith(prefix) and unit(target) != unit(source):
                collapsed.setdefault(unit(source), set()).add(unit(target))
        collapsed.setdefault(unit(source), set())
    return collapsed


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def stack_cycles() -> list[list[str]]:
    """Cycles between modules of `stack/`."""
    edges = graph()
    return cycles(
        {
            s: {t for t in ts if t.startswith("stack")}
            for s, ts in edges.items()
            if s.startswith("stack")
        }
    )


def conformance_cycles() -> list[list[str]]:
    """Cycles between the subpackages (and top-level modules) of `conformance/`."""
    return cycles(collapse(graph(), 2, "conformance"))


def imports_from(prefix: str, of: Iterable[str]) -> list[tuple[str, str]]:
    """(module, imported) pairs where a module under `prefix` imports one of `of`."""
    return sorted(
        (source, target)
        for source, targets in graph().items()
        if source.startswith(prefix)
        for target in targets
        if any(target == o or target.startswith(o + ".") for o in of)
    )


if __name__ == "__main__":
    for title, found in (("stack", stack_cycles()), ("conformance", conformance_cycles())):
        print(f"{title}: {len(found)} cycle(s)")
        for component in found:
            print("  " + " <-> ".join(component))
    leaks = imports_from("stack", ["conformance"])
    print(f"stack -> conformance: {len(leaks)} import(s)")
    for source, target in leaks:
        print(f"  {source} -> {target}")
