"""Pure tier: the import graph of zund/ has no cycle (DESIGN.md "Layers": imports
go downward only). Static: every ``import``/``from`` statement of every module,
function-level ones included, read with ``ast`` — nothing is imported."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[3]
PACKAGE = "zund"


def module_files() -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every module under zund/."""
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def imports_of(module: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """The zund modules that ``module`` imports anywhere in its body."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = (node.module or "") if node.level == 0 else _resolve_relative(
                module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:  # ``from zund.cluster import metadata``
                    found.add(sub)
                elif base in known:  # ``from zund.cluster.metadata import NodeMeta``
                    found.add(base)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
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
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    """The checker itself: a cycle closed only by an import inside a function is found."""
    graph = {"zund.a": {"zund.b"}, "zund.b": {"zund.c"}, "zund.c": {"zund.a"}, "zund.d": set()}
    assert cycles(graph) == [["zund.a", "zund.b", "zund.c"]]
    src = tmp_path / "b.py"
    src.write_text("def f():\n    from zund import a\n    return a\n")
    assert imports_of("zund.b", src, {"zund", "zund.a", "zund.b"}) == {"zund.a"}


def test_no_module_under_zund_imports_a_module_that_imports_it_back():
    """No import cycle anywhere under zund/, counting function-level imports."""
    graph = import_graph()
    # the walk must see the package (a wrong ROOT would pass vacuously)
    assert len(graph) > 100 and "zund.service" in graph, sorted(graph)[:5]
    found = cycles(graph)
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)
