"""The import graph of ``app`` has no cycle. The layer contracts (the engine's purity, domains
below the HTTP layer, repositories below services, jobs and events at the bottom) are
import-linter's, in ``pyproject.toml``, run by ``make test``."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

APP = Path(__file__).resolve().parents[2] / "app"


def test_no_module_of_app_imports_itself_through_others() -> None:
    graph = grimp.build_graph("app")
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported == module or module in graph.find_upstream_modules(imported):
                chain = graph.find_shortest_chain(importer=imported, imported=module) or ()
                cycles.append(" -> ".join((module, *chain)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_every_folder_of_app_is_a_regular_package() -> None:
    """A folder without ``__init__.py`` is a namespace package, which the import graph (and so
    the contracts) would silently skip."""
    folders = {path.parent for path in APP.rglob("*.py")}
    missing = sorted(
        str(f.relative_to(APP.parent)) for f in folders if not (f / "__init__.py").exists()
    )
    assert not missing, f"folders without __init__.py: {missing}"


# Modules that run SQL of their own although they are not repositories, each for a reason:
# infrastructure below or beside the domains, not a domain's use case.
_SQL_OUTSIDE_REPOSITORIES = {
    "app/api/idempotency.py": "the idempotency store is request middleware's own table",
    "app/check.py": "the consistency check runs its invariant queries as written",
    "app/events/outbox.py": "the outbox sits below every domain and writes its own tables",
    "app/imports/copy.py": "COPY into the staging table on the raw connection",
    "app/observability/metrics.py": "the metrics collector runs its gauge queries",
    "app/ops/router.py": "the readiness probe asks the database for its revision",
    "app/seed.py": "development seed data",
    "app/worker.py": "the worker's health probe",
}
# Domain modules whose SQL has not moved into their repository yet: this list only shrinks.
_SQL_NOT_MOVED_YET = {
    "app/assignments/loading.py",
}
_SQL_METHODS = {"execute", "scalar", "scalars", "stream", "stream_scalars"}


def _runs_sql(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "text":
            return True
        if (
            isinstance(func, ast.Attribute)
            and func.attr in _SQL_METHODS
            and isinstance(func.value, ast.Name)
            and func.value.id in {"session", "conn", "connection"}
        ):
            return True
    return False


def _modules_running_sql() -> set[str]:
    found = set()
    for path in APP.rglob("*.py"):
        relative = path.relative_to(APP.parent)
        if path.name.endswith("repository.py") or relative.parts[1] == "db":
            continue
        if _runs_sql(path):
            found.add(relative.as_posix())
    return found


def test_sql_runs_only_in_repositories() -> None:
    """Services, flows, processors and routers call repositories; they do not run SQL
    (``session.execute``/``scalar``/``scalars`` or ``text(...)``) themselves."""
    allowed = set(_SQL_OUTSIDE_REPOSITORIES) | _SQL_NOT_MOVED_YET
    offenders = sorted(_modules_running_sql() - allowed)
    assert not offenders, (
        f"SQL outside a repository (move it to the domain's repository): {offenders}"
    )


def test_the_list_of_modules_still_running_sql_only_shrinks() -> None:
    """A module that no longer runs SQL leaves the list, so it cannot slip back in."""
    allowed = set(_SQL_OUTSIDE_REPOSITORIES) | _SQL_NOT_MOVED_YET
    stale = sorted(allowed - _modules_running_sql())
    assert not stale, f"no SQL in these any more; take them off the list: {stale}"
