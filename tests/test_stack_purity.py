"""The reference stack is sans-I/O: only stack/io/ may touch the OS, a clock or scapy.
No module of the stack imports the tester, and the agent protocol imports neither
(docs/agent-protocol.md: it belongs to neither side)."""

import ast
from collections.abc import Collection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "stack"
AGENT_PROTOCOL = ROOT / "agent_protocol"
FORBIDDEN = frozenset(
    {"scapy", "os", "socket", "select", "fcntl", "threading", "time", "subprocess", "asyncio"}
)


def forbidden_imports(source: str, forbidden: Collection[str] = FORBIDDEN) -> list[str]:
    """Top-level modules from ``forbidden`` that ``source`` imports, however it spells it:
    ``import x``, ``import x.y``, ``from x import y``, ``__import__("x")`` and
    ``importlib.import_module("x")``. Relative imports stay inside the package."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            function = node.func
            called = (
                function.id
                if isinstance(function, ast.Name)
                else function.attr
                if isinstance(function, ast.Attribute)
                else ""
            )
            first = node.args[0]
            if called in ("__import__", "import_module") and isinstance(first, ast.Constant):
                names = [str(first.value)]
        found += [name for name in names if name.split(".")[0] in forbidden]
    return found


def pure_modules(root: Path = STACK) -> list[Path]:
    """Every module under ``root`` except those in ``root/io``."""
    io_package = root / "io"
    return sorted(path for path in root.rglob("*.py") if io_package not in path.parents)


def test_no_module_outside_stack_io_imports_the_os_a_clock_or_scapy() -> None:
    modules = pure_modules()
    assert STACK / "wire" / "ipv4.py" in modules
    assert offenders(modules, FORBIDDEN) == {}


def offenders(modules: list[Path], forbidden: Collection[str]) -> dict[str, list[str]]:
    return {
        str(path.relative_to(ROOT)): imports
        for path in modules
        if (imports := forbidden_imports(path.read_text(), forbidden))
    }


def test_no_module_of_the_stack_imports_the_tester() -> None:
    modules = sorted(STACK.rglob("*.py"))
    assert STACK / "io" / "agent.py" in modules
    assert offenders(modules, {"conformance"}) == {}


def test_the_agent_protocol_imports_neither_the_stack_nor_the_tester() -> None:
    modules = sorted(AGENT_PROTOCOL.rglob("*.py"))
    assert AGENT_PROTOCOL / "server.py" in modules
    assert offenders(modules, {"stack", "conformance"}) == {}


def test_the_check_catches_every_spelling_of_an_import() -> None:
    source = """
import struct, os.path
from time import monotonic
from . import sibling
from .socket import thing
import importlib
importlib.import_module("threading")
__import__("select")
def f():
    import scapy.all
"""
    assert forbidden_imports(source) == ["os.path", "time", "threading", "select", "scapy.all"]
    tester = """
import conformance
from conformance.agent import client
importlib.import_module("conformance.targets")
"""
    assert forbidden_imports(tester, {"conformance"}) == [
        "conformance",
        "conformance.agent",
        "conformance.targets",
    ]


def test_the_walk_skips_stack_io_and_nothing_else(tmp_path: Path) -> None:
    for module in ("__init__.py", "io/tap.py", "io/loop/clock.py", "wire/io.py", "tcp/io_x.py"):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("")
    found = [path.relative_to(tmp_path).as_posix() for path in pure_modules(tmp_path)]
    assert found == ["__init__.py", "tcp/io_x.py", "wire/io.py"]
