"""Step logs streamed from worker processes to the orchestrator while the step runs.

    worker process (process, loky)                  orchestrator
    ──────────────────────────────                  ────────────
    execute(task, sink=...) ── a frame per record ──> LogServer thread: each record is
      one AF_UNIX connection per worker                replayed as it arrives (run log,
    finish(): "end" ───────────────────────────────>   step log), then "end" is acked
      <──────────────────────────────────── ack ──┘
    then the step's outcome goes back on its own channel

Records reach the step's log while the step runs, in bounded memory (a worker blocks when the
orchestrator reads slower than it logs), and before the step's outcome: the worker waits for
the ack of its "end" before it answers. When a step is killed (a timeout, an interruption) or
its worker dies, ``LogServer.drain(pid)`` waits until everything that worker sent has been
replayed, so the lines it logged before are in its log before its failure is recorded.

Frames are a 4-byte length and a pickle: ``("hello", pid)``, ``("log", path, sequence,
record)``, ``("end",)``. Mutates only its socket, its thread and the loggers it replays to.
"""

from __future__ import annotations

import logging
import os
import pickle
import selectors
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from ..compiler import NodeKey
from ..context import StepContext

_LENGTH = struct.Struct(">I")
_ACK = b"\x06"
FINISH_WAIT = 30.0  # seconds a worker waits for the ack of its "end" (then answers anyway)


def replay(path: str, sequence: str, data: dict[str, Any]) -> None:
    """Re-emit a record a step logged in another process, as if logged here by that step."""
    record = logging.makeLogRecord(data)
    record.args = None
    record.sequent_node = NodeKey(path, sequence)
    logger = logging.getLogger(data["name"])
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


class _Peer:
    __slots__ = ("sock", "buffer", "pid")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.pid = 0


class LogServer:
    """Mutates its connections: receives workers' log frames and replays them, in a thread.

    The socket exists from construction (workers may be started with its ``address``);
    ``start`` starts the thread.
    """

    def __init__(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="sequent-logs-")  # private to the user (0700)
        self.address = os.path.join(self._folder, "socket")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.address)
        self._listener.listen(64)
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._changed = threading.Condition()
        self._open: dict[int, int] = {}  # worker pid -> its open connections
        self._unnamed = 0  # connections accepted whose hello has not been read yet
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="sequent-log-server")
        self._thread.daemon = True

    def start(self) -> LogServer:
        """Start replaying what arrives; returns the server."""
        self._thread.start()
        return self

    def fds(self) -> tuple[int, ...]:
        """The descriptors a forked worker must close (the listener and the wake-up pair)."""
        return (self._listener.fileno(), self._wake_r.fileno(), self._wake_w.fileno())

    def drain(self, pid: int, timeout: float = 2.0) -> bool:
        """Wait until every frame worker ``pid`` (now dead) sent has been replayed.

        Returns False when ``timeout`` seconds passed first.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._open.get(pid) or self._unnamed or self._pending():
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._changed.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        """Stop the thread (after what is readable now) and remove the socket."""
        if self._closed:
            return
        self._closed = True
        self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(5)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _pending(self) -> bool:
        """True while a connection waits to be accepted."""
        readable = selectors.DefaultSelector()
        try:
            readable.register(self._listener, selectors.EVENT_READ)
            return bool(readable.select(0))
        finally:
            readable.close()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, "listener")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._closed:
                for key, _ in selector.select():
                    if key.data == "listener":
                        self._accept(selector)
                    elif isinstance(key.data, _Peer):
                        self._read(selector, key.data)
        finally:
            for key in list(selector.get_map().values()):
                if isinstance(key.data, _Peer):
                    key.data.sock.close()
            selector.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, OSError):
            return
        sock.setblocking(False)
        with self._changed:
            self._unnamed += 1
        selector.register(sock, selectors.EVENT_READ, _Peer(sock))

    def _read(self, selector: selectors.BaseSelector, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(1 << 18)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            peer.buffer += data
            self._frames(peer)
            return
        selector.unregister(peer.sock)
        peer.sock.close()
        with self._changed:
            if peer.pid:
                self._open[peer.pid] -= 1
            else:
                self._unnamed -= 1
            self._changed.notify_all()

    def _frames(self, peer: _Peer) -> None:
        """Handle the whole frames in ``peer``'s buffer; keep an unfinished one."""
        buffer, start = peer.buffer, 0
        while len(buffer) - start >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer, start)
            end = start + _LENGTH.size + size
            if len(buffer) < end:
                break
            message = pickle.loads(buffer[start + _LENGTH.size : end])
            start = end
            self._handle(peer, message)
        del buffer[:start]

    def _handle(self, peer: _Peer, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "log":
            try:
                replay(message[1], message[2], message[3])
            except Exception:  # noqa: BLE001 - one bad record must not stop the stream
                logging.getLogger("sequent").exception("a step's log record could not be written")
        elif kind == "end":
            try:
                peer.sock.send(_ACK)
            except OSError:
                pass
        elif kind == "hello":
            with self._changed:
                peer.pid = int(message[1])
                self._unnamed -= 1
                self._open[peer.pid] = self._open.get(peer.pid, 0) + 1


# -- the worker's side --------------------------------------------------------------------

_senders: dict[str, LogSender | None] = {}


class LogSender:
    """A worker's connection to the orchestrator's ``LogServer`` (one per worker process)."""

    def __init__(self, address: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(address)
        self._lock = threading.Lock()
        self._sent = False
        self._send(("hello", os.getpid()))
        self._sent = False

    @classmethod
    def to(cls, address: str | None) -> LogSender | None:
        """This process's sender to ``address`` (connected on first use), None if it cannot."""
        if not address:
            return None
        if address not in _senders:
            try:
                _senders[address] = cls(address)
            except OSError:
                _senders[address] = None  # records then travel inside the outcome
        return _senders[address]

    def sink(self, context: StepContext) -> Callable[[dict[str, Any]], None]:
        """A callable sending one record dict logged by the step ``context``."""
        path, sequence = context.name, context.sequence
        return lambda record: self._send(("log", path, sequence, record))

    def finish(self) -> None:
        """After a step: wait until the orchestrator has replayed what it logged."""
        if not self._sent:
            return
        self._sent = False
        try:
            self._send(("end",))
            self._sock.settimeout(FINISH_WAIT)
            self._sock.recv(1)
        except OSError:
            pass
        finally:
            self._sock.settimeout(None)

    def _send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                self._sock.sendall(_LENGTH.pack(len(data)) + data)
            except OSError:
                return  # the orchestrator is gone; this worker ends with it
            self._sent = True


__all__ = ["LogSender", "LogServer", "replay"]
