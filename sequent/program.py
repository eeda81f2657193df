"""Program steps: ``seq.Program(argv)`` as a step's func runs an external program.

The program runs in its own process group (a new session), with the step context's
``SEQUENT_*``/``EVENTOR_*`` variables in its environment. Its stdout and stderr are logged line
by line through the step's logger as they arrive, so they reach the step's log on every
executor; a line longer than ``MAX_LINE`` (64 KiB) is logged in pieces of that size. Exit status
0 is success; anything else raises ``ProgramError`` with the status and the tail of stderr. On
the program's own ``timeout``, or when the step is interrupted or killed, the whole group is
stopped (SIGTERM, then SIGKILL after ``grace`` seconds).

Mutates a process-wide registry of the programs running here, so that whatever stops a step
(the process worker's SIGTERM handler, the scheduler on a step timeout, a Dask worker asked by
the orchestrator) can kill their groups with ``kill_programs``.
"""

from __future__ import annotations

import logging
import os
import selectors
import shlex
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from .context import StepContext, current
from .errors import DefinitionError, DefinitionTypeError
from .legacy import split_arguments

#: A step attempt: (run id, step path, sequence, attempt number).
StepId = tuple[str, str, str, int]

_TAIL_LINES = 20
_ARGUMENTS = ("argv", "cwd", "env", "timeout", "grace")  # what Program() takes
#: The longest line of a program's output logged as one record (bytes); longer lines are
#: logged in pieces of this size.
MAX_LINE = 64 * 1024
_lock = threading.RLock()  # reentrant: kill_programs may run in a signal handler
_running: dict[int, StepId | None] = {}  # process group id -> the step attempt that started it


class ProgramError(subprocess.CalledProcessError):
    """A program step's program exited with a non-zero status or was killed by a signal."""

    def __init__(self, returncode: int, cmd: list[str], stderr_tail: str) -> None:
        super().__init__(returncode, cmd, stderr=stderr_tail)

    def __str__(self) -> str:
        if self.returncode < 0:
            how = f"was killed by signal {_signal_name(-self.returncode)}"
        else:
            how = f"exited with status {self.returncode}"
        text = f"program {self.cmd!r} {how}"
        if self.stderr:
            text += f"; last lines of its stderr:\n{self.stderr}"
        return text


class ProgramTimeout(subprocess.TimeoutExpired):
    """A program step's program ran longer than its ``timeout``; its process group was killed."""

    def __str__(self) -> str:
        return (
            f"program {self.cmd!r} timed out after {self.timeout:g} s; its process group was killed"
        )


class Program:
    """An external program to run as a step: ``flow.add_step("b", func=seq.Program([...]))``.

    ``argv`` is a list of arguments (a string is split like a shell would, without running a
    shell); the step's positional ``args`` are appended to it. ``cwd`` is the working folder,
    ``env`` adds to (and overrides) the inherited environment, ``timeout`` (seconds) stops the
    program's process group and fails the step. Calling it returns the exit status (0).

    Raises ``DefinitionTypeError``/``DefinitionError`` at construction for unusable arguments.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]] | str,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        *,
        grace: float = 2.0,
        **unknown: Any,
    ) -> None:
        if unknown:  # raises, naming the closest argument
            split_arguments(unknown, frozenset(), _ARGUMENTS, "Program()")
        if isinstance(argv, str):
            try:
                argv = shlex.split(argv)
            except ValueError as exc:
                raise DefinitionError(
                    f"Program command line {argv!r} cannot be split into arguments ({exc}); "
                    f"close its quotes, or pass argv as a list of strings"
                ) from exc
        if isinstance(argv, bytes) or not isinstance(argv, Sequence):
            raise DefinitionTypeError(
                f"Program argv must be a list of strings (or one command line string), got {argv!r}"
            )
        if not argv or not all(isinstance(a, (str, os.PathLike)) for a in argv):
            raise DefinitionTypeError(
                f"Program argv must be a non-empty list of strings, got {argv!r}; "
                f"convert numbers with str()"
            )
        if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
            raise DefinitionTypeError(f"Program cwd must be a folder path, got {cwd!r}")
        if env is not None and not (
            isinstance(env, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            raise DefinitionTypeError(
                f"Program env must map variable names to string values, got {env!r}"
            )
        for what, value in (("timeout", timeout), ("grace", grace)):
            if value is None and what == "timeout":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DefinitionTypeError(f"Program {what} must be seconds, got {value!r}")
            if value < 0 or (what == "timeout" and value == 0):
                raise DefinitionError(
                    f"Program {what} must be {'> 0' if what == 'timeout' else '>= 0'} "
                    f"seconds, got {value!r}"
                )
        self.argv = [os.fspath(a) for a in argv]
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.env = dict(env) if env is not None else None
        self.timeout = float(timeout) if timeout is not None else None
        self.grace = float(grace)

    def __repr__(self) -> str:
        return f"Program({self.argv!r})"

    def __call__(self, *extra: Any) -> int:
        """Run the program to its end; return 0, or raise ``ProgramError``/``ProgramTimeout``."""
        argv = self.argv + [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in extra]
        context = current()
        log = logging.getLogger(context.logger_name if context else "sequent.program")
        env = dict(os.environ)
        env.update(self.env or {})
        if context is not None:
            env.update(context.environ())
        with _lock:  # registered before a kill can look for it, even one made at once
            process = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            _running[process.pid] = _step_id(context)
        log.info("Program %s started (pid %d)", shlex.join(argv), process.pid)
        deadline = time.monotonic() + self.timeout if self.timeout else None
        try:
            tail = _pump(process, log, deadline)
            if tail is None:
                stop_group(process.pid, self.grace, process)
                raise ProgramTimeout(argv, self.timeout or 0.0)
            status = process.wait()
        finally:
            if process.poll() is None:  # interrupted or killed while the program ran
                stop_group(process.pid, self.grace, process)
            with _lock:
                _running.pop(process.pid, None)
        if status != 0:
            raise ProgramError(status, argv, "\n".join(tail))
        log.info("Program %s exited with status 0", argv[0])
        return 0


def _step_id(context: StepContext | None) -> StepId | None:
    if context is None:
        return None
    return (context.run_id, context.name, context.sequence, context.retry)


def _pump(
    process: subprocess.Popen[bytes], log: logging.Logger, deadline: float | None
) -> deque[str] | None:
    """Log the program's output line by line until it exits; None when ``deadline`` passed.

    Returns the last lines of stderr. Stops reading when the program exits, even if a
    background child of it keeps the pipes open.
    """
    output = _Output(log)
    streams = {process.stdout: "stdout", process.stderr: "stderr"}
    exited = _exit_watch(process.pid)
    with selectors.DefaultSelector() as selector:
        for stream, which in streams.items():
            os.set_blocking(stream.fileno(), False)  # type: ignore[union-attr]
            selector.register(stream, selectors.EVENT_READ, which)  # type: ignore[arg-type]
        if exited is not None:
            selector.register(exited, selectors.EVENT_READ, "exited")
        try:
            while len(selector.get_map()) > (exited is not None):
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                events = selector.select(wait)
                if not events and deadline is not None and time.monotonic() >= deadline:
                    return None
                for key, _ in events:
                    if key.data == "exited":  # drain what it wrote, then stop
                        for stream, which in streams.items():
                            output.read(stream, which)
                        selector.unregister(key.fileobj)
                        break
                    if not output.read(key.fileobj, key.data):
                        selector.unregister(key.fileobj)
                else:
                    continue
                break
        finally:
            if exited is not None:
                os.close(exited)
            for stream, which in streams.items():
                output.flush(which)
                stream.close()  # type: ignore[union-attr]
    return output.tail


class _Output:
    """Splits a program's output into lines and logs each; keeps the tail of stderr.

    Linear in the output and bounded in memory: a line longer than ``MAX_LINE`` bytes is
    logged in pieces of at most that size (cut before a UTF-8 character that would not fit).
    """

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.partial = {"stdout": bytearray(), "stderr": bytearray()}
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)

    def read(self, stream: Any, which: str) -> bool:
        """Log the complete lines available now; False at end of file."""
        while True:
            try:
                chunk = os.read(stream.fileno(), 65536)
            except BlockingIOError:
                return True
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                self.flush(which)
                return False
            self.feed(which, chunk)

    def feed(self, which: str, chunk: bytes) -> None:
        """Log the lines ``chunk`` completes, and the full pieces of an overlong line."""
        pending = self.partial[which]
        pieces = chunk.split(b"\n")
        for number, piece in enumerate(pieces):
            pending += piece
            while len(pending) > MAX_LINE:
                cut = _boundary(pending, MAX_LINE)
                self.emit(which, pending[:cut])
                del pending[:cut]
            if number < len(pieces) - 1:
                self.emit(which, pending)
                pending.clear()

    def flush(self, which: str) -> None:
        """Log an unfinished last line."""
        if self.partial[which]:
            self.emit(which, self.partial[which])
            self.partial[which].clear()

    def emit(self, which: str, raw: bytes | bytearray) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if which == "stderr":
            self.tail.append(line)
        self.log.info("[%s] %s", which, line)


def _boundary(data: bytearray, limit: int) -> int:
    """Where to cut ``data`` at most ``limit`` bytes in, not inside a UTF-8 character."""
    cut = limit
    while cut > limit - 3 and data[cut] & 0xC0 == 0x80:  # a continuation byte
        cut -= 1
    return cut


def _exit_watch(pid: int) -> int | None:
    """A file descriptor readable when ``pid`` exits (Linux pidfd), or None where unsupported."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def stop_group(pgid: int, grace: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group ``pgid``, then SIGKILL it after ``grace`` seconds if needed."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    if process is not None:
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process is not None:
        process.wait()


def kill_programs(step: StepId | None = None) -> int:
    """SIGKILL the process groups of programs running here (those of ``step``, or all).

    Returns how many groups were signalled. Safe to call from a signal handler.
    """
    with _lock:
        groups = [pgid for pgid, owner in _running.items() if step is None or owner == step]
    killed = 0
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)


__all__ = [
    "MAX_LINE",
    "Program",
    "ProgramError",
    "ProgramTimeout",
    "kill_programs",
    "stop_group",
]
