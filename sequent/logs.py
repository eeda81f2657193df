"""Run and step logs: the seed's line format, one file per run, one per step instance.

Mutates the root logger's handlers and level for the duration of a run (``RunLogging``), so
that steps logging with ``logging.getLogger(__name__)`` show up as they did in the original.
Files are opened in a checked ``LogFolder`` (see ``sequent.logfolder``): private by default,
never through a symbolic link.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

from .context import STEP_ENDED, current
from .logfolder import RUN_LOG, LogFolder, safe_name

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


def run_log_dir(logdir: str | os.PathLike[str], flow_name: str, run_id: str) -> Path:
    """The folder holding a run's logs: ``<logdir>/<flow name>/<run id>``."""
    return Path(logdir) / safe_name(flow_name) / safe_name(run_id)


def step_log_name(path: str, sequence: str) -> str:
    """The file name of one step instance's log: ``<path>@<sequence>.log``."""
    return f"{safe_name(path)}@{safe_name(sequence)}.log"


def step_log_path(folder: Path, path: str, sequence: str) -> Path:
    """The log file of one step instance: ``<folder>/<path>@<sequence>.log``."""
    return folder / step_log_name(path, sequence)


class StepRouter(logging.Handler):
    """Mutates step log files: appends each record logged inside a step to that step's file.

    The step is the record's ``sequent_node`` (records replayed from worker processes) or the
    step context of the thread that logged it. A step's own lines are kept in memory while it
    runs (up to ``BUFFERED`` lines) and written when its body ends (``step_ended``), with one
    open, write and close: logging costs no file operation per line and no lock held across
    file operations while steps run. Program output and replayed records are written at once,
    after what the step logged before them.
    """

    BUFFERED = 256

    def __init__(self, folder: LogFolder, keep_open: int = 32) -> None:
        super().__init__(logging.NOTSET)
        self.folder = folder
        self.keep_open = keep_open
        self.files: OrderedDict[tuple[str, str], IO[str]] = OrderedDict()
        self.pending: dict[tuple[str, str], list[str]] = {}
        self.setFormatter(SeedFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        node = getattr(record, "sequent_node", None)
        try:
            if node is not None:
                where = (node.path, node.sequence)
                self._flush(where)
                self._file(where).write(self.format(record) + "\n")
                return
            context = current()
            if context is None:
                return
            where = (context.name, context.sequence)
            lines = self.pending.get(where)
            if lines is None:
                self.pending[where] = [self.format(record) + "\n"]
            else:
                lines.append(self.format(record) + "\n")
                if len(lines) >= self.BUFFERED:
                    self._flush(where)
        except Exception:
            self.handleError(record)

    def step_ended(self, context: Any) -> None:
        """Write what the step of ``context`` logged (called in its thread as its body ends)."""
        where = (context.name, context.sequence)
        if where not in self.pending:
            return
        self.acquire()
        try:
            lines = self.pending.pop(where, None)
            if lines:
                if where in self.files:  # keep the order with what went to the open file
                    self.files[where].write("".join(lines))
                else:
                    self._append(where, "".join(lines))
        except Exception:  # a full disk must not fail the step: said as logging says it
            self._lost(where)
        finally:
            self.release()

    def _lost(self, where: tuple[str, str]) -> None:
        if logging.raiseExceptions:
            sys.stderr.write(f"sequent: could not write the log of step {where[0]}/{where[1]}\n")

    def _flush(self, where: tuple[str, str]) -> None:
        lines = self.pending.pop(where, None)
        if lines:
            self._file(where).write("".join(lines))

    def _append(self, where: tuple[str, str], text: str) -> None:
        with self.folder.open(step_log_name(*where)) as handle:
            handle.write(text)

    def _file(self, where: tuple[str, str]) -> IO[str]:
        handle = self.files.get(where)
        if handle is None:
            handle = self.folder.open(step_log_name(*where))
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
            self._flush((path, sequence))
            self._file((path, sequence)).write(text)
        finally:
            self.release()

    def close(self) -> None:
        for where in list(self.pending):  # steps abandoned while running (timeouts)
            try:
                self._flush(where)
            except Exception:
                self._lost(where)
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


class _FileHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to a file opened in a ``LogFolder``; closes it when closed."""

    def close(self) -> None:
        self.acquire()
        try:
            self.flush()
            self.stream.close()
        finally:
            self.release()
        super().close()


class RunLogging:
    """Attach the run's handlers to the root logger while a run goes on; detach them after.

    A console handler is added only when the root logger has no handler of its own (an
    application that configured logging keeps its own output). Closes ``folder`` on exit.
    """

    def __init__(self, folder: LogFolder, level: int) -> None:
        self.folder = folder
        self.level = level
        self.run_log = folder.path / RUN_LOG
        self.handlers: list[logging.Handler] = []
        self.router: StepRouter | None = None
        self._saved_level = logging.NOTSET

    def __enter__(self) -> RunLogging:
        root = logging.getLogger()
        formatter = SeedFormatter()
        file_handler = _FileHandler(self.folder.open(RUN_LOG))
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
        STEP_ENDED.append(self.router.step_ended)
        self._saved_level = root.level
        root.setLevel(min(self.level, logging.INFO))
        return self

    def __exit__(self, *exc: Any) -> None:
        root = logging.getLogger()
        if self.router is not None and self.router.step_ended in STEP_ENDED:
            STEP_ENDED.remove(self.router.step_ended)
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        self.handlers.clear()
        root.setLevel(self._saved_level)
        self.folder.close()
