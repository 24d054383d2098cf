"""No module reaches into another's private names (checked in CI beside mypy).

A private name starts with one underscore. Inside a class, ``self._x`` and ``cls._x`` are its
own; anything else (``model._snapshot()``, ``from .tables import _clip``) reaches into another
module's or object's insides and fails this check. ``ALLOWED`` lists the few private names of
the standard library and third-party packages that are their documented way to do a thing,
anywhere; ``ALLOWED_IN`` the reaches into a third-party package's insides that one file makes
because the package has no public way, each with its reason.
Run: python .ci/check_private.py (exit 1 listing each reach).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = [ROOT / "mlwidget", ROOT / "server_extension" / "mlwidget_server"]
OWN = {"self", "cls"}
# documented private-looking names of other libraries: os._exit (leave a forked child at once),
# sys._getframe is not used; namedtuple's _replace/_asdict/_fields are its public API
ALLOWED = {"_exit", "_replace", "_asdict", "_fields", "_make"}
# (file, name): why that file may reach a third-party private name (no public way exists).
ALLOWED_IN = {
    ("mlwidget/table_limits.py", "_archive"): (
        "openpyxl's read-only workbook keeps its zip open here; the sheet's XML is measured by "
        "streaming it before pandas reads the sheet, and openpyxl has no public way to open it"
    ),
    ("mlwidget/table_limits.py", "_worksheet_path"): (
        "the sheet's part name in that zip; openpyxl has no public attribute for it"
    ),
}


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def reaches(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(ROOT).as_posix()
    allowed = ALLOWED | {name for (where, name) in ALLOWED_IN if where == rel}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr) and node.attr not in allowed:
            base = node.value
            if isinstance(base, ast.Name) and base.id in OWN:
                continue
            if isinstance(base, ast.Call) and getattr(base.func, "id", None) == "super":
                continue
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if private(alias.name) and alias.name not in allowed:
                    found.append(f"{node.lineno}: import {alias.name}")
    return found


def main() -> int:
    problems = []
    for folder in FOLDERS:
        for path in sorted(folder.rglob("*.py")):
            for where in reaches(path):
                problems.append(f"{path.relative_to(ROOT)}:{where}")
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} reach(es) into another module's private names.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
