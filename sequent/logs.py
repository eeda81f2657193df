"""Run and step logs: the seed's line format, one file per run, one per step instance.

Mutates the root logger's handlers and level for the duration of a run (``RunLogging``), so
that steps logging with ``logging.getLogger(__name__)`` show up as they did in the original.
Files are opened in a checked ``LogFolder`` (see ``sequent.logfolder``): private by default,
never through a symbolic link.

    step threads, the log server, the core          the run's log-writer thread
    ──────────────────────────────────────          ───────────────────────────
    logger.info(...) -> LogWriter.handle:           every INTERVAL s (at once when the queue
      which step (sequent_node or the step          is long): pop what is queued, format
      context), run log or not, the message ──────> each line once, write each file's lines
      appended to one queue (no lock, no I/O)       with one os.write (files opened lazily,
                                                    up to KEEP_OPEN kept open)

A line reaches its file within about INTERVAL seconds of being logged, so ``sequent logs
--follow`` shows a running step's lines, and a killed orchestrator loses at most the lines of
its last INTERVAL. ``close`` writes everything queued before it returns.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

from .context import current
from .logfolder import RUN_LOG, LogFolder, safe_name

FORMAT = "[ %(asctime)s ][ %(levelname)s ][ %(message)s ]"

#: ``extra=`` of the run's closing line: the run log takes it whatever its level (SPEC 3.7).
CLOSING = {"sequent_closing": True}


class SeedFormatter(logging.Formatter):
    """Formats ``[ time ][ LEVEL ][ message ]``; a traceback goes inside the brackets."""

    def __init__(self) -> None:
        super().__init__(FORMAT)
        self._stamp: tuple[int, str] = (-1, "")  # (second, its text): one strftime a second

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return self.line(record.created, record.msecs, record.levelname, record.getMessage(),
                         record.exc_text, record.stack_info)  # fmt: skip

    def line(
        self,
        created: float,
        msecs: float,
        levelname: str,
        message: str,
        exc_text: str | None = None,
        stack_info: str | None = None,
    ) -> str:
        """The text of a record from its fields (``message``: its ``getMessage()``), no newline."""
        second = int(created)
        cached, stamp = self._stamp
        if cached != second:
            stamp = time.strftime(self.default_time_format, self.converter(created))
            self._stamp = (second, stamp)
        text = f"[ {stamp},{int(msecs):03d} ][ {levelname} ][ {message} ]"
        if exc_text:
            text += "\n" + exc_text
        if stack_info:
            if text[-1:] != "\n":
                text += "\n"
            text += self.formatStack(stack_info)
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


#: One record queued for the writer: (step or None, whether the run log takes it, created,
#: msecs, levelname, message, exc_text, stack_info): plain values, so the record itself is
#: freed at once. A flush marker is (FLUSH, False, 0, 0, "", "", an Event the writer sets, None).
_Queued = tuple[Any, bool, float, float, str, str, Any, Any]
FLUSH = object()

_writers: weakref.WeakSet[LogWriter] = weakref.WeakSet()


class LogWriter(logging.Handler):
    """Mutates the run's log files: the run log and every step log, written by one thread.

    ``handle`` runs in the thread that logs: it decides where the record goes (the step is the
    record's ``sequent_node``, set on records replayed from workers and on the core's own
    lines about a step, else the step context of the logging thread; the run log takes what
    is at the flow's level or above, and the closing line) and queues it with its message,
    taking no lock and doing no I/O. The writer thread formats and writes what is queued every
    ``INTERVAL`` seconds, or at once when ``SOON`` records wait. A thread that finds ``ROOM``
    records (or ``ROOM_BYTES`` of long messages) waiting waits for the writer: memory stays
    bounded when steps log faster than the disk takes it. After the closing line the run log
    takes nothing more, so that line stays its last.
    """

    INTERVAL = 0.2
    SOON = 2048
    ROOM = 8192
    LONG = 1024  # characters: messages from this long count towards ROOM_BYTES
    ROOM_BYTES = 8 << 20
    KEEP_OPEN = 32

    def __init__(self, folder: LogFolder, level: int) -> None:
        super().__init__(min(level, logging.INFO))
        self.folder = folder
        self.run_level = level
        self.setFormatter(SeedFormatter())
        self.seed = SeedFormatter()  # the writer thread's own (its stamp cache)
        self._queue: deque[_Queued] = deque()
        self._long = 0  # characters of long messages queued
        self._room = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed_run = False  # the closing line was queued
        self._forked = False
        self._files: OrderedDict[Any, int] = OrderedDict()
        self._lost: set[Any] = set()
        self._run_fd = folder.open_fd(RUN_LOG)
        self._thread = threading.Thread(target=self._serve, name="sequent-log-writer", daemon=True)
        self._thread.start()
        _writers.add(self)

    # -- the logging thread's side --------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:
        """Queue ``record`` for the run log and its step's log (no filters, no lock)."""
        if self._forked:  # a forked worker's copy: its steps' records travel back instead
            return False
        fields = record.__dict__
        where = fields.get("sequent_node")
        if where is None:
            context = current()
            if context is not None:
                where = (context.name, context.sequence)
        to_run = record.levelno >= self.run_level or "sequent_closing" in fields
        if to_run and self._closed_run:
            to_run = False
        if where is None and not to_run:
            return False
        try:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = self.seed.formatException(record.exc_info)
        except Exception:  # a bad format string must not fail the step: said as logging says it
            self.handleError(record)
            return False
        queue = self._queue
        queue.append(
            (where, to_run, record.created, record.msecs, record.levelname, message,
             record.exc_text, record.stack_info)
        )  # fmt: skip
        if to_run and "sequent_closing" in fields:
            self._closed_run = True
        if len(message) >= self.LONG:
            with self._room:
                self._long += len(message)
        if len(queue) >= self.SOON and not self._wake.is_set():
            self._wake.set()
        if len(queue) >= self.ROOM or self._long >= self.ROOM_BYTES:
            self._wait_for_room()
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def _wait_for_room(self) -> None:
        self._wake.set()
        with self._room:
            while (
                len(self._queue) >= self.ROOM or self._long >= self.ROOM_BYTES
            ) and self._thread.is_alive():
                self._room.wait(0.5)

    def flush(self, timeout: float = 10.0) -> None:
        """Write what was queued before this call (waits at most ``timeout`` seconds)."""
        if self._forked or not self._thread.is_alive():
            return
        done = threading.Event()
        self._queue.append((FLUSH, False, 0.0, 0.0, "", "", done, None))
        self._wake.set()
        done.wait(timeout)

    def close(self) -> None:
        """Write everything queued, stop the thread, close the files."""
        if not self._forked and self._thread.is_alive():
            self._stop.set()
            self._wake.set()
            self._thread.join()
        for fd in [*self._files.values(), self._run_fd]:
            if fd >= 0:
                os.close(fd)
        self._files.clear()
        self._run_fd = -1
        super().close()

    # -- the writer thread ----------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.INTERVAL)
            self._wake.clear()
            self._write_queued()
        self._write_queued()

    def _write_queued(self) -> None:
        """Format and write every record queued now; then wake the threads waiting for room."""
        queue, line = self._queue, self.seed.line
        run: list[str] = []
        steps: dict[Any, list[str]] = {}
        markers: list[threading.Event] = []
        freed = 0
        for _ in range(len(queue)):
            where, to_run, created, msecs, level, message, exc_text, stack = queue.popleft()
            if where is FLUSH:
                markers.append(exc_text)
                continue
            if len(message) >= self.LONG:
                freed += len(message)
            try:
                text = line(created, msecs, level, message, exc_text, stack) + "\n"
            except Exception:  # noqa: BLE001 - one bad record must not stop the others
                text = f"[ ? ][ {level} ][ {message} ]\n"
            if to_run:
                run.append(text)
            if where is not None:
                lines = steps.get(where)
                if lines is None:
                    steps[where] = [text]
                else:
                    lines.append(text)
        if run:
            self._write_run("".join(run))
        for where, lines in steps.items():
            self._write_step(where, "".join(lines))
        with self._room:
            self._long -= freed
            self._room.notify_all()
        for marker in markers:
            marker.set()

    def _write_run(self, text: str) -> None:
        try:
            _write_all(self._run_fd, text)
        except OSError as exc:
            self._lose(None, exc)

    def _write_step(self, where: Any, text: str) -> None:
        fd = self._files.get(where)
        try:
            if fd is None:
                if where in self._lost:
                    return
                fd = self.folder.open_fd(step_log_name(where[0], where[1]))
                self._files[where] = fd
                if len(self._files) > self.KEEP_OPEN:
                    os.close(self._files.popitem(last=False)[1])
            else:
                self._files.move_to_end(where)
            _write_all(fd, text)
        except OSError as exc:  # a full disk must not fail the run: said as logging says it
            self._lose(where, exc)

    def _lose(self, where: Any, exc: OSError) -> None:
        if where in self._lost:
            return
        self._lost.add(where)
        what = "the run log" if where is None else f"the log of step {where[0]}/{where[1]}"
        if where is not None and None not in self._lost:  # the record shows it too
            now, message = time.time(), f"Could not write {what}: {exc}"
            line = self.seed.line(now, now % 1 * 1000, "WARNING", message, None, None)
            self._write_run(line + "\n")
        if logging.raiseExceptions:
            sys.stderr.write(f"sequent: could not write {what}: {exc}\n")


def _write_all(fd: int, text: str) -> None:
    data = text.encode("utf-8", "backslashreplace")
    while data:
        data = data[os.write(fd, data) :]


def _forget_writers() -> None:
    """In a forked child: the writers' threads are gone; their handlers queue nothing."""
    for writer in list(_writers):
        writer._forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_writers)


class RunLogging:
    """Attach the run's handlers to the root logger while a run goes on; detach them after.

    A console handler is added only when the root logger has no handler of its own (an
    application that configured logging keeps its own output). Closes ``folder`` on exit,
    after every queued line is written.
    """

    def __init__(self, folder: LogFolder, level: int) -> None:
        self.folder = folder
        self.level = level
        self.run_log = folder.path / RUN_LOG
        self.handlers: list[logging.Handler] = []
        self.writer: LogWriter | None = None
        self._saved_level = logging.NOTSET

    def __enter__(self) -> RunLogging:
        root = logging.getLogger()
        console_wanted = not root.handlers
        self.writer = LogWriter(self.folder, self.level)
        self.handlers.append(self.writer)
        if console_wanted:
            console = logging.StreamHandler(sys.stderr)
            console.setLevel(self.level)
            console.setFormatter(SeedFormatter())
            self.handlers.append(console)
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
        self.folder.close()
