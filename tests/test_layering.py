"""The compiler stays pure: it imports no executor, store, logging or I/O module."""

from __future__ import annotations

import ast
from pathlib import Path

import sequent.compiler

FORBIDDEN = {"logging", "sqlite3", "sqlite_utils", "os", "io", "subprocess", "socket", "threading",
             "multiprocessing", "concurrent", "loky", "distributed", "dask", "shutil", "pathlib"}
FORBIDDEN_RELATIVE = {"executors", "store", "logs", "runner", "flow", "cli"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level >= 2:
                names.add("sequent." + module)
            elif node.level == 0:
                names.add(module)
    return names


def test_compiler_imports_nothing_impure():
    folder = Path(sequent.compiler.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 4
    for path in files:
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN, f"{path.name} imports {name}"
            if name.startswith("sequent."):
                assert name.split(".")[1] not in FORBIDDEN_RELATIVE, f"{path.name} imports {name}"
