"""The import layers hold (import-linter checks the contracts in `make test`); these tests check
what the contracts cannot say: no module escapes them, no import cycle is left, and imports
inside functions stay the few that Django's start-up needs."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
APPS = CONFIG["root_packages"]

# (module, imported): each must be imported late, and says why where it does.
LATE_IMPORTS_ALLOWED = {
    # Django imports an app's package before its models are ready; `send_event` and
    # `send_events` need them.
    ("webhooks", "webhooks.services"),
    ("webhooks", "webhooks.batches"),
    # AppConfig.ready(): the one place where an app may touch models and connect receivers.
    ("deliveries.apps", "deliveries.receivers"),
    ("operations.apps", "operations.receivers"),
    ("subscriptions.apps", "subscriptions.catalog"),
    ("subscriptions.apps", "subscriptions.checks"),
    # beat_init: beat sets Django up in that handler, before the alerts can be imported.
    ("config.celery", "operations.alerts"),
    # OpenTelemetry is loaded only when tracing is turned on.
    ("config.tracing", "config.spans"),
    ("config.tracing", "config.tracing_sdk"),
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*APPS, include_external_packages=False)


def _app_modules(graph: grimp.ImportGraph) -> set[str]:
    return {module for module in graph.modules if ".migrations." not in module}


def test_no_import_cycle_among_app_modules(graph):
    modules = _app_modules(graph)
    cycles = [c for c in _strongly_connected(graph, modules) if len(c) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_every_app_module_belongs_to_a_layer(graph):
    (layers,) = [c["layers"] for c in CONFIG["contracts"] if c["type"] == "layers"]
    declared = {
        name.strip()
        for layer in layers
        for name in layer.replace("|", ":").split(":")
        if name.strip()
    }
    roots = set(APPS)

    def covered(module: str) -> bool:
        parts = module.split(".")
        return any(".".join(parts[:n]) in declared for n in range(1, len(parts) + 1))

    escaped = sorted(m for m in _app_modules(graph) if m not in roots and not covered(m))
    assert escaped == [], f"modules in no layer of the import contract: {escaped}"


def test_imports_inside_functions_are_only_those_start_up_needs():
    late = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            late |= {(module, imported) for imported in _imports_inside_functions(path)}
    assert late <= LATE_IMPORTS_ALLOWED, sorted(late - LATE_IMPORTS_ALLOWED)


def _imports_inside_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] in APPS:
                    found |= _modules_named(node)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] in APPS}
    return found


def _modules_named(node: ast.ImportFrom) -> set[str]:
    """`from subscriptions import catalog` imports the module subscriptions.catalog."""
    assert node.module is not None
    package = ROOT.joinpath(*node.module.split("."))
    modules = {
        f"{node.module}.{alias.name}"
        for alias in node.names
        if (package / f"{alias.name}.py").exists()
    }
    return modules or {node.module}


def _strongly_connected(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other in a circle."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if child < len(edges[node]):
                work.append((node, child + 1))
                nxt = edges[node][child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups
