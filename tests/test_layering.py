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


# -- the whole package: imports flow one way --------------------------------------------------

PACKAGE = Path(sequent.__file__).parent

#: Each room of the package and its layer: a module imports only rooms of lower layers, and
#: modules of its own room. ``cli -> flow/runner/report -> executors, store -> compiler ->
#: status/errors``; one module per room unless the room is a package.
LAYERS = {
    "errors": 0,
    "status": 0,
    "version": 0,
    "text": 0,
    "terminal": 0,
    "compiler": 1,
    "context": 1,
    "logfolder": 1,
    "config": 1,
    "legacy": 1,
    "resources": 1,
    "references": 2,
    "parameters": 2,
    "selection": 2,
    "marks": 3,
    "monitor": 3,
    "program": 2,
    "logs": 2,
    "graphviz": 2,
    "arguments": 2,
    "handles": 3,
    "executors": 3,
    "store": 3,
    "progress": 4,
    "plan": 4,
    "report": 4,
    "runner": 5,
    "flow": 6,
    "loader": 7,
    "cli": 8,
    "__init__": 9,
    "__main__": 9,  # ``python -m sequent``: the command
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_imports(path: Path) -> set[str]:
    """The sequent modules ``path`` imports anywhere (module level, functions, TYPE_CHECKING)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "sequent")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "sequent":
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                known = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists()
                found.add(candidate if known else target)
    found.discard(name)
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): package_imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_room_has_a_layer():
    rooms = {room(module) for module in import_graph()}
    assert rooms <= set(LAYERS), f"give these rooms a layer in LAYERS: {rooms - set(LAYERS)}"


def test_imports_flow_one_way():
    wrong = []
    for module, targets in import_graph().items():
        for target in targets:
            if room(target) == room(module):
                continue
            if LAYERS[room(target)] >= LAYERS[room(module)]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_circle():
    graph = import_graph()
    circles = []
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            circles.append(" -> ".join(trail[trail.index(module) :] + [module]))
            return
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not circles, "import circles:\n" + "\n".join(circles)
