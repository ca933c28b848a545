"""The shape of the code, read from it: no module imports itself through others; the worker, a
transport like http, reaches the database only through domain use cases; domain code imports no
transport or driver; no module outgrows the house limit; and tests/ mirrors service/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_names() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "service").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the `service` modules it imports (`from pkg import mod` counts as `pkg.mod`)."""
    modules = module_names()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for target in targets:
                resolved = known(target) if target.startswith("service") else None
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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


def test_no_module_imports_itself_through_others() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_worker_imports_no_repository() -> None:
    graph = import_graph()
    reaching = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("service.worker")
        for target in targets
        if target.startswith("service.repositories")
    }
    assert reaching == set()
    assert "service.domain.job_services" in graph["service.worker.execution"]  # via the domain


def library_imports(module: str) -> set[str]:
    """The top-level names of everything `module` imports, ours or a library's."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module_names()[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return found


TRANSPORTS_AND_DRIVERS = ("starlette", "hypercorn", "asyncpg", "arq", "redis", "httpx2")


def test_domain_code_imports_no_transport_or_driver() -> None:
    offenders = {
        (module, name)
        for module in module_names()
        if module.startswith("service.domain")
        for name in library_imports(module)
        if name.split(".")[0] in TRANSPORTS_AND_DRIVERS
        or name.startswith(("service.http", "service.worker"))
    }
    assert offenders == set()


MAX_LINES = 400


def test_no_module_is_longer_than_the_house_limit() -> None:
    lengths = {name: len(path.read_text().splitlines()) for name, path in module_names().items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_tests_mirror_the_service_packages() -> None:
    """Each folder of tests is named after the package of `service/` whose behaviour it pins,
    or after the folder of the repository whose files it checks (tests/deploy: deploy/)."""
    packages = {
        path.parent.relative_to(ROOT / "service")
        for path in (ROOT / "service").rglob("__init__.py")
    }
    folders = {
        path.parent.relative_to(ROOT / "tests")
        for path in (ROOT / "tests").rglob("test_*.py")
        if path.parent != ROOT / "tests"
    }
    assert {folder for folder in folders - packages if not (ROOT / folder).is_dir()} == set()
