"""The process backend's zygote: one single-threaded process that forks the pool's workers.

    orchestrator (threads: the pool's reader, log server, store heartbeat ...)
        │  Zygote(): forked now if this process has one thread, else a fresh interpreter
        │  spawn(conn) ── control socket: environ, cwd, log address + the worker's pipe end
        ▼                 and a status pipe (SCM_RIGHTS)
    zygote (one thread, its own session) ── fork ──> worker: serve(conn) (process_worker.py)
        └─ reaps its workers; writes each one's exit code into its status pipe and closes it

Why: forking a process that runs threads can deadlock the child (a lock held by another
thread at the fork stays held), and Python 3.12+ warns about it; the orchestrator runs threads
by the time it needs a new worker. ``spawn`` and ``forkserver`` avoid the fork but start the
worker by importing the main script again, so a script without an ``if __name__ ==
"__main__":`` guard runs its flows again in every worker. The zygote imports no script: it is
a copy of the orchestrator made before any thread exists (or, when threads exist already, a
fresh interpreter that imports only this module); steps reach workers as today (cloudpickle
by value for the main script's functions, by reference for importable ones).

A worker is the zygote's child, so ``ZygoteChild`` stands in for ``multiprocessing.Process``
in the pool: ``pid``, ``sentinel`` (the status pipe: readable once the worker was reaped),
``exitcode``, ``join`` and ``close``. The zygote ends at end-of-file on its control socket
(the orchestrator closed it or died); its workers then get SIGTERM (``PR_SET_PDEATHSIG``).

Mutates only the processes it starts and the pipes it hands out.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from multiprocessing import connection
from typing import Any

_PID = struct.Struct("q")
_CODE = struct.Struct("i")
_LAUNCH = (
    "import sys; sys.path[:] = sys.argv[3:]; "
    "from sequent.executors.zygote import main; main(int(sys.argv[1]), sys.argv[2] == '1')"
)


def single_threaded() -> bool:
    """True when this process runs one thread (the OS's count where it tells, as Python's
    fork warning does)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return threading.active_count() == 1


class ZygoteChild:
    """A worker forked by the zygote, seen as a ``multiprocessing.Process`` is."""

    def __init__(self, pid: int, status: int) -> None:
        self.pid = pid
        self.sentinel = status
        self.exitcode: int | None = None

    def join(self, timeout: float | None = None) -> None:
        """Wait (up to ``timeout`` seconds) for the zygote to report the worker's end."""
        if self.exitcode is not None or self.sentinel < 0:
            return
        ready, _, _ = select.select([self.sentinel], [], [], timeout)
        if ready:
            data = os.read(self.sentinel, _CODE.size)
            # No code: the zygote itself is gone, and the worker with it (its death signal).
            self.exitcode = _CODE.unpack(data)[0] if len(data) == _CODE.size else -signal.SIGTERM

    def close(self) -> None:
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


class Zygote:
    """Starts the zygote now (forked if this process runs one thread); ``spawn`` asks it for a
    worker; ``stop`` ends it (after its workers ended)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._socket = ours
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._pid = 0
        # Linux ties the parent-death signal to the thread that starts the zygote: asked for
        # only from the main thread (else the zygote notices the orchestrator's end at EOF).
        watch = threading.current_thread() is threading.main_thread()
        self.forked = watch and single_threaded()
        if self.forked:
            pid = os.fork()
            if pid == 0:  # the zygote: a copy of this process, one thread
                try:
                    ours.close()
                    main(theirs.detach(), watch=True)
                finally:
                    os._exit(0)
            self._pid = pid
        else:
            fd = theirs.fileno()
            self._process = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, str(fd), "1" if watch else "0", *sys.path],
                pass_fds=(fd,),
            )
        theirs.close()

    def spawn(self, conn: connection.Connection, log_address: str | None) -> ZygoteChild:
        """A new worker serving ``conn`` with this process's environment and folder."""
        status_r, status_w = os.pipe()
        request = pickle.dumps((dict(os.environ), os.getcwd(), log_address))
        try:
            with self._lock:
                socket.send_fds(self._socket, [request], [conn.fileno(), status_w])
                reply = self._socket.recv(_PID.size)
        finally:
            os.close(status_w)
        if len(reply) != _PID.size:
            os.close(status_r)
            raise OSError("the process executor's zygote is gone")
        return ZygoteChild(_PID.unpack(reply)[0], status_r)

    def stop(self) -> None:
        """End the zygote (end-of-file on its socket) and reap it."""
        try:  # EOF even where a process forked from this one holds a copy of the socket
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._socket.close()
        if self._process is not None:
            self._process.wait()
        elif self._pid:
            try:
                os.waitpid(self._pid, 0)
            except ChildProcessError:
                pass
            self._pid = 0


# -- the zygote's side ----------------------------------------------------------------------


def main(control: int, watch: bool = False) -> None:
    """The zygote's loop: fork a worker per request, report each worker's end, until EOF."""
    os.setsid()  # off the terminal's group: a Ctrl-C reaches the orchestrator alone
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not a handler a forked copy inherited
    if watch:
        from .process_worker import _term_with_parent

        _term_with_parent()
    sock = socket.socket(fileno=control)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    statuses: dict[int, int] = {}
    while True:
        ready, _, _ = select.select([control, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        _reap(statuses)
        if control in ready:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
            if not data:
                return
            environ, cwd, log_address = pickle.loads(data)
            pid = os.fork()
            if pid == 0:
                own = (control, wake_r, wake_w, *statuses.values())
                _worker(fds, environ, cwd, log_address, own)
            os.close(fds[0])
            statuses[pid] = fds[1]
            sock.send(_PID.pack(pid))


def _reap(statuses: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = statuses.pop(pid, None)
        if fd is not None:
            try:
                os.write(fd, _CODE.pack(os.waitstatus_to_exitcode(status)))
            except OSError:
                pass
            os.close(fd)


def _worker(
    fds: list[int], environ: dict[str, str], cwd: str, log_address: Any, zygote: tuple[int, ...]
) -> None:
    """A freshly forked worker: drop the zygote's descriptors, take the orchestrator's
    environment and folder, serve steps; never return."""
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for fd in zygote:
            os.close(fd)
        os.close(fds[1])
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        from .process_worker import serve

        serve(connection.Connection(fds[0]), os.getppid(), (), True, log_address)
    except BaseException:  # noqa: BLE001 - a worker that cannot serve just ends
        code = 1
    finally:
        os._exit(code)


__all__ = ["Zygote", "ZygoteChild", "single_threaded"]
