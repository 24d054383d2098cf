"""The house's structure, checked in CI: no module over 400 lines, no import circle.

Modules still over the limit are listed in OVER_LIMIT with the size they may not grow past (a
ratchet: the renovation brings them under the limit and then removes them from the list).
Run: python .ci/check_structure.py (exit 1 with the reasons when a rule is broken).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "mlwidget": ROOT / "mlwidget",
    "mlwidget_server": ROOT / "server_extension" / "mlwidget_server",
}
LIMIT = 400
OVER_LIMIT = {}


def modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports anywhere (functions and TYPE_CHECKING blocks too: a
    circle of type hints is still a circle of the design)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    mods = modules()
    problems = []
    for path in mods.values():
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        ceiling = OVER_LIMIT.get(rel, LIMIT)
        if lines > ceiling:
            problems.append(f"{rel} has {lines} lines (at most {ceiling}): split it by concept")
    # a package's __init__ importing its own submodules is not a circle of the house
    graph = {
        n: {
            m
            for m in imports(n, p, set(mods))
            if not (p.name == "__init__.py" and m.startswith(n + "."))
        }
        for n, p in mods.items()
    }
    for group in circles(graph):
        problems.append("import circle: " + " -> ".join(group))
    for problem in problems:
        print(f"check_structure: {problem}")
    if not problems:
        print(f"check_structure: {len(mods)} modules, none over its size, no import circle")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
