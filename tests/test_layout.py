"""The tree shows the architecture: no import circles, small modules, one owner of the run layout."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCE_PACKAGES = ("steps", "operators", "trainyard", "dags")
MAX_MODULE_LINES = 400
# A module may run longer only when its docstring says why, in a sentence starting so.
SIZE_REASON = "Longer than 400 lines because"
RUN_LAYOUT_MODULE = PROJECT_ROOT / "steps" / "store" / "run_layout.py"


def _modules() -> dict[str, Path]:
    modules = {}
    for package in SOURCE_PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules `path` imports, at any depth (lazy imports inside functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    found.add(submodule)
                elif node.module in known:
                    found.add(node.module)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

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
            if len(component) > 1 or node in graph[node]:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_project_module_imports_itself_through_a_circle():
    modules = _modules()
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    assert import_cycles(graph) == []


def test_the_cycle_finder_sees_a_circle_through_a_lazy_import():
    # The positive control: the old steps/store/factory.py <-> minio_store.py circle, by shape.
    graph = {"store.factory": {"store.minio_store"}, "store.minio_store": {"store.factory"}, "store.keys": set()}
    assert import_cycles(graph) == [["store.factory", "store.minio_store"]]


def test_no_module_grows_past_400_lines_without_saying_why():
    too_long = []
    for path in _modules().values():
        lines = path.read_text().splitlines()
        if len(lines) > MAX_MODULE_LINES and SIZE_REASON not in (ast.get_docstring(ast.parse("\n".join(lines))) or ""):
            too_long.append(f"{path.relative_to(PROJECT_ROOT)} ({len(lines)} lines)")
    assert too_long == []


def test_every_steps_package_says_what_it_holds_and_may_import():
    silent = []
    for init in sorted((PROJECT_ROOT / "steps").rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if init.parent.name != "steps" and ("import" not in doc or len(doc.splitlines()) < 2):
            silent.append(str(init.relative_to(PROJECT_ROOT)))
    assert silent == []


_RUN_KEY_LITERAL = re.compile(r"""["']runs/""")


def test_run_artifact_keys_are_spelled_only_in_the_run_layout_module():
    strays = []
    for path in _modules().values():
        if path == RUN_LAYOUT_MODULE:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _RUN_KEY_LITERAL.search(line):
                strays.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}")
    assert strays == []
    assert _RUN_KEY_LITERAL.search(RUN_LAYOUT_MODULE.read_text())  # the scan looks for what the owner has
