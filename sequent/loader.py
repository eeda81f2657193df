"""Loading a flow from a Python file: ``FILE[:OBJECT]`` to a ``Sequent``, running nothing.

``load_flow`` runs FILE as the main module, as ``python FILE`` would, except that
``Sequent.run`` only notes the flows it is called on while the file loads: a script that builds
a flow and runs it at module level is loaded, not run. Every problem raises ``FlowFileError``
saying what is wrong and what to do; the command line turns it into exit status 2.
"""

from __future__ import annotations

import builtins
import contextlib
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import FlowFileError, SequentError
from .flow import Sequent

#: Function names tried, in order, when FILE has no module-level flow and no OBJECT is given.
BUILDER_NAMES = ("build_flow",)


def split_target(target: str) -> tuple[Path, str | None]:
    """Split ``FILE[:OBJECT]``; a path that exists as given wins over a split at ``:``."""
    if Path(target).is_file() or ":" not in target:
        return Path(target), None
    file, _, name = target.rpartition(":")
    return Path(file), name or None


@contextlib.contextmanager
def load_flow(target: str, params: Mapping[str, Any] | None = None) -> Iterator[Sequent]:
    """Yield the flow ``FILE[:OBJECT]`` defines; restore the interpreter's state afterwards.

    FILE runs as ``__main__`` (so ``if __name__ == "__main__":`` blocks run too) with its folder
    first on ``sys.path``, while ``Sequent.run`` only notes the flows it is called on. OBJECT is
    a module-level name (dots reach attributes): a ``Sequent``, or a function called with no
    arguments that returns one (or builds and runs exactly one). Without OBJECT, the flow is the
    only ``Sequent`` among the module's globals; else the only one the script ran; else the
    result of a ``build_flow()`` function. With ``params`` (``-p KEY=VALUE``), the flow must
    come from a function, OBJECT or ``build_flow``, called with them as keyword arguments.
    Raises ``FlowFileError`` saying what is wrong.
    """
    path, name = split_target(target)
    if not path.exists():
        raise FlowFileError(f"no such file: {str(path)!r}; give the path of a Python file")
    if not path.is_file():
        raise FlowFileError(f"{str(path)!r} is not a file; give the path of a Python file")
    path = path.resolve()
    try:
        source = path.read_text(encoding="utf-8")
        code = compile(source, str(path), "exec")
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise FlowFileError(f"cannot load {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    module = types.ModuleType("__main__")
    module.__dict__.update(
        {"__file__": str(path), "__builtins__": builtins, "__spec__": None, "__cached__": None}
    )
    saved_main = sys.modules.get("__main__")
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.modules["__main__"] = module
    sys.argv = [str(path)]
    sys.path.insert(0, str(path.parent))
    try:
        with _intercepted_runs() as ran:
            _execute(code, module, path)
            flow = _choose(module, name, ran, path, dict(params or {}))
        yield flow
    finally:
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        sys.argv = saved_argv
        sys.path[:] = saved_path


@contextlib.contextmanager
def _intercepted_runs() -> Iterator[list[Sequent]]:
    ran: list[Sequent] = []
    original = Sequent.run

    def noted(self: Sequent, *args: Any, **kwargs: Any) -> bool:
        ran.append(self)
        return True

    Sequent.run = noted  # type: ignore[method-assign]
    try:
        yield ran
    finally:
        Sequent.run = original  # type: ignore[method-assign]


def _execute(code: types.CodeType, module: types.ModuleType, path: Path) -> None:
    try:
        exec(code, module.__dict__)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise FlowFileError(
                f"{str(path)!r} exited with status {exc.code!r} while loading; a flow file "
                f"should build its flow without exiting"
            ) from exc
    except SequentError as exc:
        raise FlowFileError(f"the flow in {str(path)!r} does not build: {exc}") from exc
    except Exception as exc:
        raise FlowFileError(
            f"loading {str(path)!r} raised {type(exc).__name__}: {exc}{where(exc, path)}; "
            f"`sequent --debug ...` shows the full traceback"
        ) from exc


def where(exc: BaseException, path: Path) -> str:
    """`` (line N)`` of ``path`` where ``exc`` was raised, or, when it was raised in another
    file, `` (in FILE line M, reached from line N)``."""
    frames = _frames(exc)
    if not frames:
        return ""
    inner = frames[-1]
    mine = [f for f in frames if f[0] == str(path)]
    if inner[0] == str(path):
        return f" (line {inner[1]})"
    reached = f", reached from line {mine[-1][1]}" if mine else ""
    return f" (in {inner[0]} line {inner[1]}{reached})"


def _frames(exc: BaseException) -> list[tuple[str, int]]:
    result = []
    tb = exc.__traceback__
    while tb is not None:
        result.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    return result


def _choose(
    module: types.ModuleType,
    name: str | None,
    ran: list[Sequent],
    path: Path,
    params: dict[str, Any],
) -> Sequent:
    shown = str(path)
    if params and name is None:
        return _builder(module, shown, ran, params)
    if name is not None:
        value: Any = module
        for part in name.split("."):
            if not hasattr(value, part):
                raise FlowFileError(
                    f"{shown!r} has no object {name!r}; name a Sequent or a function returning "
                    f"one, as FILE:OBJECT"
                )
            value = getattr(value, part)
        return _as_flow(value, name, shown, ran, params)
    flows = _distinct(v for k, v in vars(module).items() if not k.startswith("__"))
    if len(flows) == 1:
        return flows[0]
    if len(flows) > 1:
        names = sorted(k for k, v in vars(module).items() if isinstance(v, Sequent))
        raise FlowFileError(
            f"{shown!r} defines several flows ({', '.join(names)}); choose one as "
            f"{shown}:{names[0]}"
        )
    started = _distinct(ran)
    if len(started) == 1:
        return started[0]
    if len(started) > 1:
        ran_names = ", ".join(repr(flow.name) for flow in started)
        raise FlowFileError(
            f"{shown!r} runs several flows ({ran_names}) and keeps none in a module-level name; "
            f"choose one as FILE:OBJECT"
        )
    for builder in BUILDER_NAMES:
        value = vars(module).get(builder)
        if callable(value):
            return _as_flow(value, builder, shown, ran, params)
    raise FlowFileError(
        f"no flow found in {shown!r}: define a module-level Sequent or a build_flow() function, "
        f"or name one as FILE:OBJECT (a Sequent, or a function returning one)"
    )


def _distinct(values: Any) -> list[Sequent]:
    flows: list[Sequent] = []
    for value in values:
        if isinstance(value, Sequent) and not value._proxy and all(f is not value for f in flows):
            flows.append(value)
    return flows


def _builder(
    module: types.ModuleType, shown: str, ran: list[Sequent], params: dict[str, Any]
) -> Sequent:
    """The flow a builder function makes with ``params``: ``build_flow``, the only choice."""
    for builder in BUILDER_NAMES:
        value = vars(module).get(builder)
        if callable(value):
            return _as_flow(value, builder, shown, ran, params)
    raise FlowFileError(
        f"-p/--params-file give parameters to the function that builds the flow, and "
        f"{shown!r} has no build_flow() function; name the function as FILE:FUNCTION"
    )


def _as_flow(
    value: Any, name: str, shown: str, ran: list[Sequent], params: dict[str, Any]
) -> Sequent:
    if isinstance(value, Sequent):
        if params:
            raise FlowFileError(
                f"{shown}:{name} is a Sequent, which takes no parameters "
                f"({', '.join(sorted(params))}); name the function that builds it as "
                f"FILE:FUNCTION"
            )
        return value
    if not callable(value):
        raise FlowFileError(
            f"{shown}:{name} is a {type(value).__name__}, not a Sequent or a function returning one"
        )
    from .parameters import check_parameters

    try:
        check_parameters(value, params, f"{shown}:{name}")
    except SequentError as exc:
        raise FlowFileError(str(exc)) from exc
    before = len(ran)
    try:
        result = value(**params)
    except SequentError as exc:
        raise FlowFileError(f"{shown}:{name}() does not build a flow: {exc}") from exc
    except Exception as exc:
        raise FlowFileError(f"{shown}:{name}() raised {type(exc).__name__}: {exc}") from exc
    if isinstance(result, Sequent):
        return result
    started = _distinct(ran[before:])
    if result is None and len(started) == 1:
        return started[0]
    raise FlowFileError(
        f"{shown}:{name}() returned {type(result).__name__}, not a Sequent; return the flow from it"
    )


__all__ = ["BUILDER_NAMES", "load_flow", "split_target", "where"]
