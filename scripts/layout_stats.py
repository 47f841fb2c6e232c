"""Layout numbers of the package: file count, median and max lines, and import circles.

    python scripts/layout_stats.py [ROOT]    # ROOT defaults to the repository's jaxsteer/

Every ``import jaxsteer.x`` / ``from jaxsteer.x import y`` (module level or inside a function)
is an edge of the graph; a circle is a strongly connected component of more than one module.
"""

from __future__ import annotations

import ast
import statistics
import sys
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str], package: str) -> set[str]:
    """The package's modules that ``path`` imports (``from a import b`` counts a.b if it is one)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] != package:
                continue
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in modules:
                out.add(name)
    return out


def function_imports(path: Path) -> int:
    """Imports inside a function body (they hide the import graph unless they keep start-up fast
    or keep a heavy dependency out of a light module)."""

    class Count(ast.NodeVisitor):
        depth = count = 0

        def visit_FunctionDef(self, node):  # noqa: N802 - ast's visitor naming
            self.depth += 1
            self.generic_visit(node)
            self.depth -= 1

        visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815

        def visit_Import(self, node):  # noqa: N802
            self.count += self.depth > 0

        visit_ImportFrom = visit_Import  # noqa: N815

    counter = Count()
    counter.visit(ast.parse(path.read_text()))
    return counter.count


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "jaxsteer"
    files = sorted(root.rglob("*.py"))
    lines = {f: len(f.read_text().splitlines()) for f in files}
    modules = {module_name(f, root): f for f in files}
    # A package's own __init__ is not a circle partner of its submodules (importing a.b runs a).
    graph = {m: {d for d in imports(f, set(modules), root.name)
                 if d != m and not m.startswith(d + ".")} for m, f in modules.items()}
    counts = sorted(lines.values())
    big = max(lines, key=lines.get)
    print(f"files {len(files)}, median {statistics.median(counts):g} lines, max {counts[-1]} "
          f"({big.relative_to(root.parent)}), over 400: "
          f"{sum(n > 400 for n in counts)}")
    print(f"function-level imports: {sum(function_imports(f) for f in files)}")
    found = circles(graph)
    print(f"import circles: {len(found)}")
    for comp in found:
        print("  " + " <-> ".join(comp))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
