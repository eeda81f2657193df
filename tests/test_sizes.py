"""Rooms stay small: no file in sequent/ over 500 lines, no function over 60 (named exceptions).

Each exception names why it is allowed; the list only shrinks. Counted: physical lines of the
file; a function from its ``def`` (decorators excluded) to its last line, nested ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sequent

PACKAGE = Path(sequent.__file__).parent
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60

#: Files allowed over MAX_FILE_LINES, with the reason.
LONG_FILES: dict[str, str] = {}

#: Functions (``file::qualified.name``) allowed over MAX_FUNCTION_LINES, with the reason.
LONG_FUNCTIONS: dict[str, str] = {
    "sequent/store/schema.py::_version_1": "a released migration is never edited (append only)",
}


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _shown(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def long_files() -> dict[str, int]:
    """Each file of the package over ``MAX_FILE_LINES`` and its length."""
    found = {}
    for path in _files():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            found[_shown(path)] = lines
    return found


def long_functions() -> dict[str, int]:
    """Each function of the package over ``MAX_FUNCTION_LINES`` and its length."""
    found = {}
    for path in _files():
        tree = ast.parse(path.read_text(encoding="utf-8"))

        def visit(node: ast.AST, prefix: str, path: Path = path) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        lines = (child.end_lineno or child.lineno) - child.lineno + 1
                        if lines > MAX_FUNCTION_LINES:
                            found[f"{_shown(path)}::{name}"] = lines
                    visit(child, name + ".")
                else:
                    visit(child, prefix)

        visit(tree, "")
    return found


def test_no_file_over_the_limit():
    over = {name: n for name, n in long_files().items() if name not in LONG_FILES}
    assert not over, f"files over {MAX_FILE_LINES} lines (split them by job): {over}"


def test_no_function_over_the_limit():
    over = {name: n for name, n in long_functions().items() if name not in LONG_FUNCTIONS}
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines (split them): {over}"


def test_the_exceptions_are_still_needed():
    stale = sorted(set(LONG_FILES) - set(long_files()))
    stale += sorted(set(LONG_FUNCTIONS) - set(long_functions()))
    assert not stale, f"no longer over the limit; drop them from the allow-list: {stale}"
