"""The package's shape: layers whose imports only point down, no import cycle, nothing loose.

``lint-imports`` (import-linter, configured in ``pyproject.toml``) checks the layers; these tests
run it and add what a layers contract cannot see: cycles inside one layer, and modules left at
the top of ``kpibot/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import cycles."""
    modules = sorted(m for m in graph.modules if m.startswith("kpibot"))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node):
            if not nxt.startswith("kpibot"):
                continue
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

    for module in modules:
        if module not in index:
            visit(module)
    return found


def _is_package(module: str) -> bool:
    return (ROOT / module.replace(".", "/") / "__init__.py").exists()


def test_no_import_cycle_anywhere_in_kpibot() -> None:
    graph = grimp.build_graph("kpibot", include_external_packages=False)
    # A package's __init__ importing its own submodules is not a cycle between concepts.
    cycles = [
        c
        for c in _cycles(graph)
        if not (len(c) == 2 and _is_package(c[0]) and c[1].startswith(c[0]))
    ]
    assert cycles == []


def test_no_module_sits_loose_at_the_top_of_kpibot() -> None:
    loose = sorted(
        p.name
        for p in (ROOT / "kpibot").glob("*.py")
        if p.name not in {"__init__.py", "__main__.py"}
    )
    assert loose == []


def test_the_layers_contract_holds() -> None:
    run = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert "0 broken" in run.stdout
