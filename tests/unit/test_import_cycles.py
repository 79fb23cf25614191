"""No import cycle among the modules of provisioner/ and roles/ (shipped as provisioner.stack).

Every import statement counts, those inside a function too: a cycle broken only by importing late
still means two modules that each need the other, which is what makes a layer hard to read alone.
Read with ast, nothing imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# Where each importable tree lives on disk and the name it is imported under.
TREES = {"provisioner": ROOT / "provisioner", "provisioner.stack": ROOT / "roles"}
ALIASES = {"roles": "provisioner.stack"}   # tests and tools import the stack as roles too


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in TREES.items():
        for path in folder.rglob("*.py"):
            if package == "provisioner" and (folder / "stack") in path.parents:
                continue   # the link to roles/: read once, under its own tree
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _canonical(name: str) -> str:
    for alias, real in ALIASES.items():
        if name == alias or name.startswith(alias + "."):
            return real + name[len(alias):]
    return name


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `module` imports anywhere in its text (a `from x import y` where y is a
    submodule counts as importing y)."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {_canonical(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = _canonical(node.module or "")
            subs = {f"{source}.{alias.name}" for alias in node.names}
            out |= {s for s in subs if s in known} or {source}
            if source in known and not subs <= set(known):
                out.add(source)
    return {name for name in out if name in known and name != module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def test_no_import_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "modules that import each other (directly or around a loop):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_checker_sees_function_level_and_relative_imports():
    """The graph is what the files say: a late import inside a function and a relative import are edges."""
    graph = _graph()
    assert "provisioner.stack" in graph["provisioner.cli"]             # `from .stack import STACK` in a function
    assert "provisioner.stack.app" in graph["provisioner.stack"]       # `from . import app, ...`
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
