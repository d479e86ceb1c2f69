"""The reference stack is sans-I/O: only stack/io/ may touch the OS, a clock or scapy."""

import ast
from pathlib import Path

STACK = Path(__file__).resolve().parent.parent / "stack"
FORBIDDEN = frozenset(
    {"scapy", "os", "socket", "select", "fcntl", "threading", "time", "subprocess", "asyncio"}
)


def forbidden_imports(source: str) -> list[str]:
    """Top-level modules from FORBIDDEN that ``source`` imports, however it spells it:
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
        found += [name for name in names if name.split(".")[0] in FORBIDDEN]
    return found


def pure_modules(root: Path = STACK) -> list[Path]:
    """Every module under ``root`` except those in ``root/io``."""
    io_package = root / "io"
    return sorted(path for path in root.rglob("*.py") if io_package not in path.parents)


def test_no_module_outside_stack_io_imports_the_os_a_clock_or_scapy() -> None:
    modules = pure_modules()
    assert STACK / "wire" / "ipv4.py" in modules
    offenders = {
        str(path.relative_to(STACK.parent)): imports
        for path in modules
        if (imports := forbidden_imports(path.read_text()))
    }
    assert offenders == {}


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


def test_the_walk_skips_stack_io_and_nothing_else(tmp_path: Path) -> None:
    for module in ("__init__.py", "io/tap.py", "io/loop/clock.py", "wire/io.py", "tcp/io_x.py"):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("")
    found = [path.relative_to(tmp_path).as_posix() for path in pure_modules(tmp_path)]
    assert found == ["__init__.py", "tcp/io_x.py", "wire/io.py"]
