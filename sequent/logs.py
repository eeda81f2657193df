"""Run and step logs: the seed's line format, one file per run, one per step instance.

Mutates the root logger's handlers and level for the duration of a run (``RunLogging``), so
that steps logging with ``logging.getLogger(__name__)`` show up as they did in the original.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

from .context import current

FORMAT = "[ %(asctime)s ][ %(levelname)s ][ %(message)s ]"

#: ``extra=`` of the run's closing line: the run log takes it whatever its level (SPEC 3.7).
CLOSING = {"sequent_closing": True}


class SeedFormatter(logging.Formatter):
    """Formats ``[ time ][ LEVEL ][ message ]``; a traceback goes inside the brackets."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if text.endswith("]") or "\n" not in text:
            return text
        head, _, tail = text.partition(" ]\n")
        return f"{head}\n{tail} ]" if tail else text


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", part) or "_"


def run_log_dir(logdir: str | os.PathLike[str], flow_name: str, run_id: str) -> Path:
    """The folder holding a run's logs: ``<logdir>/<flow name>/<run id>``."""
    return Path(logdir) / _safe(flow_name) / _safe(run_id)


def step_log_path(folder: Path, path: str, sequence: str) -> Path:
    """The log file of one step instance: ``<folder>/<path>@<sequence>.log``."""
    return folder / f"{_safe(path)}@{_safe(sequence)}.log"


class StepRouter(logging.Handler):
    """Mutates step log files: appends each record logged inside a step to that step's file.

    The step is the record's ``sequent_node`` (records replayed from worker processes) or the
    step context of the thread that logged it.
    """

    def __init__(self, folder: Path, keep_open: int = 32) -> None:
        super().__init__(logging.NOTSET)
        self.folder = folder
        self.keep_open = keep_open
        self.files: OrderedDict[tuple[str, str], IO[str]] = OrderedDict()
        self.setFormatter(SeedFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        node = getattr(record, "sequent_node", None)
        if node is not None:
            where = (node.path, node.sequence)
        else:
            context = current()
            if context is None:
                return
            where = (context.name, context.sequence)
        try:
            self._file(where).write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)

    def _file(self, where: tuple[str, str]) -> IO[str]:
        handle = self.files.get(where)
        if handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = open(step_log_path(self.folder, *where), "a", encoding="utf-8")  # noqa: SIM115
            self.files[where] = handle
            if len(self.files) > self.keep_open:
                _, oldest = self.files.popitem(last=False)
                oldest.close()
        else:
            self.files.move_to_end(where)
        return handle

    def write(self, path: str, sequence: str, text: str) -> None:
        """Append raw text (a program's output) to a step's log."""
        self.acquire()
        try:
            self._file((path, sequence)).write(text)
        finally:
            self.release()

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        self.files.clear()
        super().close()


class _AtLevelOrClosing(logging.Filter):
    """Passes records at ``level`` or above, and the run's closing line at any level."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or getattr(record, "sequent_closing", False)


class RunLogging:
    """Attach the run's handlers to the root logger while a run goes on; detach them after.

    A console handler is added only when the root logger has no handler of its own (an
    application that configured logging keeps its own output).
    """

    def __init__(self, folder: Path, level: int) -> None:
        self.folder = folder
        self.level = level
        self.run_log = folder / "run.log"
        self.handlers: list[logging.Handler] = []
        self.router: StepRouter | None = None
        self._saved_level = logging.NOTSET

    def __enter__(self) -> RunLogging:
        root = logging.getLogger()
        self.folder.mkdir(parents=True, exist_ok=True)
        formatter = SeedFormatter()
        file_handler = logging.FileHandler(self.run_log, encoding="utf-8")
        file_handler.addFilter(_AtLevelOrClosing(self.level))
        file_handler.setFormatter(formatter)
        self.handlers.append(file_handler)
        if not root.handlers:
            console = logging.StreamHandler(sys.stderr)
            console.setLevel(self.level)
            console.setFormatter(formatter)
            self.handlers.append(console)
        self.router = StepRouter(self.folder)
        self.router.setLevel(min(self.level, logging.INFO))
        self.handlers.append(self.router)
        for handler in self.handlers:
            handler.sequent_orchestrator = True  # type: ignore[attr-defined]  # see worker.py
            root.addHandler(handler)
        self._saved_level = root.level
        root.setLevel(min(self.level, logging.INFO))
        return self

    def __exit__(self, *exc: Any) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        self.handlers.clear()
        root.setLevel(self._saved_level)
