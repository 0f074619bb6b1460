"""The import graph of ``app`` has no cycle. The layer contracts (the engine's purity, domains
below the HTTP layer, repositories below services, jobs and events at the bottom) are
import-linter's, in ``pyproject.toml``, run by ``make test``."""

from __future__ import annotations

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
