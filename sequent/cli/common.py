"""What the ``sequent`` commands share: bad-usage errors, finding the store and the run, tables.

Errors speak the command line's words: a ``SequentError`` raised by the library is shown with
its API words replaced (``recovery_run`` becomes ``--run-id``, ``RunMode.restart`` becomes
``sequent run``), with stored text escaped, and exits with status 2. ``--debug`` (before the
command) prints the full traceback of what went wrong as well.
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

import click

from ..errors import FlowFileError, SequentError
from ..references import STORE_VARIABLE, find_store, resolve_run
from ..terminal import safe, safe_line

if TYPE_CHECKING:
    from ..flow import Sequent

#: Set by ``sequent --debug``: bad usage also prints the traceback behind it.
DEBUG = {"on": False}

_CLI_WORDS = [
    (r"run the flow with RunMode\.restart first", "run it with `sequent run FILE` first"),
    (r"pass\s+the\s+store=\s+path\s+the\s+failed\s+run\s+used", "pass the --store it used"),
    (
        r"pass one of those as recovery_run, or None for\s+the latest",
        "pass one of those with --run-id, or leave --run-id out for the latest",
    ),
    (r"pass store=':memory:'", "pass --store :memory:"),
    (r" \(or Store\.runs\(\)\)", ""),
    (r"Store\.attempts\((['\"]?)(\w+)\1\)", r"`sequent show \2`"),
    (r"or use executor='(\w+)'", r"or use --executor \1"),
    (r"RunMode\.recover", "sequent recover"),
    (r"RunMode\.restart", "sequent run"),
]


def cli_words(message: str) -> str:
    """``message`` with the Python API's words replaced by the command line's."""
    for pattern, replacement in _CLI_WORDS:
        message = re.sub(pattern, replacement, message)
    return message


class UsageProblem(click.ClickException):
    """Bad usage: the message goes to standard error and the command exits with status 2."""

    exit_code = 2

    def format_message(self) -> str:
        return safe(self.message)

    def show(self, file: IO[Any] | None = None) -> None:
        if DEBUG["on"] and self.__cause__ is not None:
            cause = self.__cause__
            text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
            click.echo(safe(text), err=True, nl=False)
        super().show(file)


@contextlib.contextmanager
def usage() -> Iterator[None]:
    """Turn a ``SequentError`` raised inside into ``UsageProblem`` (exit 2), in CLI words."""
    try:
        yield
    except SequentError as exc:
        raise UsageProblem(cli_words(str(exc))) from exc


@contextlib.contextmanager
def load_flow(target: str, params: Mapping[str, Any] | None = None) -> Iterator[Sequent]:
    """``loader.load_flow``, its ``FlowFileError`` turned into bad usage (exit status 2)."""
    from .. import loader

    try:
        with loader.load_flow(target, params) as flow:
            yield flow
    except FlowFileError as exc:
        raise UsageProblem(cli_words(str(exc))) from exc


def store_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--store PATH``: a store file, or a flow file whose store to read."""
    return click.option(
        "--store",
        "store",
        type=click.Path(dir_okay=False),
        help=(
            "The store (a .run.db), or a flow file (.py) whose store to read; default: "
            "$SEQUENT_STORE, else the single *.run.db here (or one folder below)."
        ),
    )(fn)


def flow_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--flow NAME``: which flow's runs ``latest`` means, where a store holds several."""
    return click.option(
        "--flow", "flow_name", help="The flow whose runs to consider (where a store holds several)."
    )(fn)


def locate(store: str | None, flow_file: str | None = None) -> tuple[str, str | None]:
    """The store to read and the flow name a flow file gives (or None).

    ``store`` may itself be a flow file (``--store examples/pitch.py``). Raises
    ``UsageProblem`` when no store can be found.
    """
    if store and store.endswith(".py"):
        store, flow_file = None, store
    flow_store = flow_name = None
    if flow_file:
        with load_flow(flow_file) as flow:
            flow_store, flow_name = flow.store_path, flow.name
    with usage():
        found = find_store(store, flow_store)
    if not (store or flow_store) and found == os.environ.get(STORE_VARIABLE):
        if not os.path.exists(found):
            raise UsageProblem(
                f"no store at {found!r}, the path the environment variable {STORE_VARIABLE} "
                f"gives; correct or unset {STORE_VARIABLE}, or pass --store PATH"
            )
    return found, flow_name


@contextlib.contextmanager
def reading(store: str) -> Iterator[Any]:
    """The store at ``store`` opened read-only; ``UsageProblem`` when it cannot be read."""
    from ..store import read_store

    with usage(), read_store(store) as opened:
        yield opened


def the_run(opened: Any, reference: str, flow_name: str | None) -> str:
    """The full id of run ``reference`` (id, prefix, ``latest``) in the open store."""
    with usage():
        return resolve_run(opened, reference, flow_name)


def check_output(path: str, option: str = "-o") -> None:
    """Refuse (``UsageProblem``) an output file that cannot be written, before any work.

    Its folder must exist and be writable, and the path must not be a folder itself.
    """
    import os
    import shlex

    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageProblem(
            f"{option} {path!r} is a folder; name a file in it, e.g. {option} "
            f"{os.path.join(path, 'out')!r}"
        )
    if not os.path.isdir(folder):
        raise UsageProblem(
            f"{option} {path!r}: the folder {folder!r} does not exist; create it first "
            f"(mkdir -p {shlex.quote(folder)}) or name a file in an existing folder"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageProblem(
            f"{option} {path!r}: the folder {folder!r} is not writable; name a file in a "
            f"folder you can write to"
        )


@contextlib.contextmanager
def writing(path: str, option: str = "-o") -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into ``UsageProblem`` naming it (exit 2)."""
    try:
        yield
    except OSError as exc:
        raise UsageProblem(
            f"{option} {path!r} could not be written: {exc.strerror or exc}; name a file in a "
            f"folder you can write to"
        ) from exc


def table(headers: list[str], rows: list[list[str]], title: str | None = None) -> None:
    """Print rows as a rich table on a terminal, as aligned plain text otherwise (escaped)."""
    rows = [[safe_line(cell) for cell in row] for row in rows]
    out = click.get_text_stream("stdout")
    if out.isatty():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        grid = Table(*headers, title=title, header_style="bold")
        for row in rows:
            grid.add_row(*(escape(cell) for cell in row))
        Console().print(grid)
        return
    if title:
        click.echo(title)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip()
        )


def when(value: float | None) -> str:
    """A stored time as local ``YYYY-MM-DD HH:MM:SS.mmm`` (``-`` for none)."""
    from ..text import clock_text

    return clock_text(value)


def result_word(value: Any) -> str:
    """A stored result: success, failure, or unfinished."""
    from ..text import result_text

    return result_text(value)


__all__ = [
    "DEBUG",
    "UsageProblem",
    "check_output",
    "cli_words",
    "flow_option",
    "load_flow",
    "locate",
    "reading",
    "result_word",
    "store_option",
    "table",
    "the_run",
    "usage",
    "when",
    "writing",
]
