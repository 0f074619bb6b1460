"""Figures of the code's shape: import cycles, back-edges, longest file, function-local imports.

Run with `python bench/architecture.py`. Cycles are the strongly connected components of the
module import graph of `app` (via grimp); back-edges are the edges a depth-first search meets
towards a module still on its stack (each one closes a cycle); function-local imports are
`import` statements inside a function body.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def back_edges(graph: dict[str, set[str]]) -> int:
    """Edges from a module to one still on the depth-first stack."""
    state: dict[str, int] = {}  # 1 on stack, 2 done
    count = 0
    for root in sorted(graph):
        if root in state:
            continue
        state[root] = 1
        work = [(root, iter(sorted(graph[root])))]
        while work:
            node, children = work[-1]
            for child in children:
                if state.get(child) == 1:
                    count += 1
                elif child not in state:
                    state[child] = 1
                    work.append((child, iter(sorted(graph[child]))))
                    break
            else:
                state[node] = 2
                work.pop()
    return count


def import_graph(package: str = "app") -> dict[str, set[str]]:
    built = grimp.build_graph(package)
    modules = {m for m in built.modules if m == package or m.startswith(package + ".")}
    return {m: built.find_modules_directly_imported_by(m) & modules for m in modules}


def function_local_imports(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        found.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    return sorted(set(found))


def main() -> None:
    graph = import_graph()
    components = strongly_connected(graph)
    print(f"modules: {len(graph)}  edges: {sum(len(v) for v in graph.values())}")
    print(f"cycles (strongly connected components > 1): {len(components)}")
    for component in sorted(components, key=len, reverse=True):
        print(f"  size {len(component)}: {', '.join(component)}")
    print(f"back-edges: {back_edges(graph)}")
    lengths = sorted(
        (
            (len(p.read_text().splitlines()), str(p.relative_to(ROOT)))
            for p in (ROOT / "app").rglob("*.py")
        ),
        reverse=True,
    )
    print("longest files: " + ", ".join(f"{name} {n}" for n, name in lengths[:5]))
    local = function_local_imports(ROOT / "app")
    print(f"function-local imports: {len(local)}")
    if "-v" in sys.argv:
        for where in local:
            print("  " + where)


if __name__ == "__main__":
    main()
