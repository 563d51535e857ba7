"""The store is the only module that speaks SQL: no query text, no ``.db`` handle, no connection
outside ``automem/store``. Read from the source's syntax tree, so a comment or a docstring that
mentions SELECT does not count and a query split over several string pieces still does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "automem"
STORE = PACKAGE / "store"

#: a statement keyword followed by more SQL, in capitals as the package writes it: "insert" alone
#: (an enum value) and "select the best" (prose) are not queries
_SQL = re.compile(
    r"^\s*(SELECT|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|WITH\s+\w+\s+AS|CREATE\s+"
    r"(TABLE|INDEX|VIEW)|ALTER\s+TABLE|DROP\s+(TABLE|INDEX|VIEW)|PRAGMA)\b",
)
#: opening a connection of one's own
_CONNECT = {("sqlite3", "connect"), ("sqlite_utils", "Database")}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def offences(source: str) -> list[tuple[int, str]]:
    """(line, what) for each piece of SQL in ``source``."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str) and _SQL.match(head.value):
                found.append((node.lineno, f"query text {head.value[:40]!r}"))
            for part in node.values:
                skip.add(id(part))  # judged once, as the whole f-string
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if _SQL.match(node.value):
                found.append((node.lineno, f"query text {node.value[:40]!r}"))
        elif isinstance(node, ast.Attribute) and node.attr == "db":
            found.append((node.lineno, "a .db handle"))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in _CONNECT:
                found.append((node.lineno, f"{node.value.id}.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module in {"sqlite_utils", "sqlite3"}:
            names = {a.name for a in node.names}
            if names & {"connect", "Database"}:
                found.append((node.lineno, f"from {node.module} import {', '.join(sorted(names))}"))
    return sorted(found)


def test_the_check_sees_each_kind_of_sql() -> None:
    source = '''
"""SELECT in a docstring is prose."""
a = store.db.execute("SELECT 1 FROM episodes WHERE id = ?", [1])
b = f"SELECT {cols} FROM steps"
c = ("UPDATE jobs SET status = ? "
     "WHERE id = ?")
d = sqlite3.connect(path)
INSERT = "insert"
e = "select the best candidate"
'''
    kinds = [what for _, what in offences(source)]
    assert sum(k == "a .db handle" for k in kinds) == 1
    assert sum(k.startswith("query text") for k in kinds) == 3
    assert "sqlite3.connect" in kinds
    assert len(kinds) == 5  # the enum value, the prose and the docstring are not SQL


def _package_offences() -> dict[str, list[tuple[int, str]]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE in path.parents:
            continue
        found = offences(path.read_text(encoding="utf-8"))
        if found:
            out[str(path.relative_to(PACKAGE.parent))] = found
    return out


def test_no_sql_outside_the_store() -> None:
    found = _package_offences()
    if found:
        lines = [f"{path}:{line}: {what}" for path, items in found.items() for line, what in items]
        pytest.fail("SQL outside automem/store (move it into a store method):\n" + "\n".join(lines))
