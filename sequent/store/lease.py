"""The run lease: which orchestrator is running a run now, and whether it is still alive.

Mutates the ``leases`` table and ``attempts.heartbeat`` of the database it is handed, and
nothing else. While an orchestrator runs (or recovers) a run it holds the run's row in
``leases``; the row is inserted in the transaction that records the attempt's start and
deleted in the one that records its end, so a run is never started twice at once:

    begin (BEGIN IMMEDIATE) ── no row, or its holder is gone ──> insert the row, the attempt
                            └─ a live holder ──────────────────> LeaseError, nothing written
    every HEARTBEAT_EVERY s  ── UPDATE leases/attempts SET heartbeat   (a thread of its own)
    finish                   ── DELETE the row, with the attempt's end

A holder is *gone* when it runs on this host and its process has ended, or when it runs on
another host and its heartbeat is older than ``STALE_AFTER`` seconds. A holder on this host
whose process is alive is never gone, however old its heartbeat: it is *stalled* (stopped with
SIGSTOP, or a step holds the GIL so the heartbeat thread cannot run) and will go on. A holder
that is gone never blocks a recover; one that is alive is taken over only with ``force``.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import LeaseError

log = logging.getLogger("sequent")

#: Seconds between two heartbeats of a running orchestrator.
HEARTBEAT_EVERY = 3.0
#: A lease whose heartbeat is older than this many seconds belongs to an orchestrator that is
#: gone (killed, or its machine stopped): five missed heartbeats.
STALE_AFTER = 15.0
#: Seconds after a beat during which the lease counts as this orchestrator's without a look:
#: no one can take a lease over (unforced) before its heartbeat is ``STALE_AFTER`` s old.
FRESH_FOR = 2 * HEARTBEAT_EVERY

HOST = socket.gethostname()

COLUMNS = ("run_id", "attempt", "host", "pid", "user", "started", "heartbeat")

# Runs whose lease this process holds now: (store path, run id). A lease held by this very
# process is alive exactly while it is listed here, whatever its heartbeat says.
_held: set[tuple[str, str]] = set()
_held_lock = threading.Lock()


def read(conn: sqlite3.Connection, run_id: str, store: str) -> dict[str, Any] | None:
    """The lease of ``run_id`` as a dict, with ``alive``, ``age``, ``gone`` and ``stalled``
    added; or None.

    ``age`` is the seconds since its last heartbeat; ``gone`` says why its holder is gone
    (None while it is alive); ``stalled`` why a live holder looks unresponsive (None if not).
    """
    row = conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM leases WHERE run_id = ?", (run_id,)
    ).fetchone()
    if row is None:
        return None
    return judge(dict(zip(COLUMNS, row, strict=True)), store)


def judge(lease: dict[str, Any], store: str, now: float | None = None) -> dict[str, Any]:
    """``lease`` with ``age``, ``gone`` (why its holder is gone, or None), ``alive`` and
    ``stalled`` (why a live holder does not beat, or None) set."""
    now = time.time() if now is None else now
    heartbeat = lease.get("heartbeat")
    age = now - heartbeat if isinstance(heartbeat, (int, float)) else None
    lease["age"] = age
    lease["gone"] = _gone(lease, age, store)
    lease["alive"] = lease["gone"] is None
    lease["stalled"] = _stalled(lease, age) if lease["alive"] else None
    return lease


def _gone(lease: Mapping[str, Any], age: float | None, store: str) -> str | None:
    pid, host = lease.get("pid"), lease.get("host")
    if host == HOST and pid == os.getpid():
        with _held_lock:
            held = (store, lease["run_id"]) in _held
        return None if held else "it was held by this process, which no longer runs it"
    if host == HOST and isinstance(pid, int):
        # Its process tells, not its heartbeat: a stopped or GIL-bound orchestrator is alive.
        if not pid_alive(pid):
            return f"its process {pid} on this host has ended"
        born = process_started(pid)
        if born is not None and isinstance(lease.get("started"), (int, float)):
            if born > lease["started"] + 2.0:  # (boot time is in whole seconds)
                return (
                    f"its process {pid} on this host has ended (pid {pid} is now another "
                    f"process, started after the lease was taken)"
                )
        return None
    if age is None or age > STALE_AFTER:
        shown = "none" if age is None else f"{age:.0f} s old"
        return f"its last heartbeat is {shown} (stale after {STALE_AFTER:.0f} s)"
    return None


def _stalled(lease: Mapping[str, Any], age: float | None) -> str | None:
    """Why a live holder on this host looks unresponsive (a stale heartbeat), or None."""
    if lease.get("host") != HOST or lease.get("pid") == os.getpid():
        return None
    if age is not None and age <= STALE_AFTER:
        return None
    shown = "no heartbeat" if age is None else f"no heartbeat for {age:.0f} s"
    return (
        f"{shown}, but its process {lease['pid']} on this host is alive (stopped, for example "
        f"with Ctrl-Z or SIGSTOP, or held up by a step that keeps Python's GIL)"
    )


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def process_started(pid: int) -> float | None:
    """When process ``pid`` on this host started (Unix seconds), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            ticks = int(handle.read().rpartition(b")")[2].split()[19])
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def claim(
    conn: sqlite3.Connection,
    run_id: str,
    attempt: int,
    *,
    store: str,
    started: float,
    force: bool = False,
) -> str | None:
    """Take the lease of ``run_id`` for this process, inside the caller's write transaction.

    Returns a note for the run log when a previous holder's lease was taken over (None
    otherwise). Raises ``LeaseError`` naming the holder when another orchestrator that looks
    alive holds it and ``force`` is False; the caller's transaction then writes nothing.
    """
    current = read(conn, run_id, store)
    note = None
    if current is not None:
        if current["alive"] and not force:
            raise LeaseError(busy_message(current, store))
        why = current["gone"] or "--force was given"
        note = (
            f"Took over run {run_id} from attempt {current['attempt']}'s orchestrator (pid "
            f"{current['pid']} on {current['host']!r}): {why}"
        )
    conn.execute(
        "INSERT OR REPLACE INTO leases (run_id, attempt, host, pid, user, started, heartbeat) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (run_id, attempt, HOST, os.getpid(), _user(), started, started),
    )
    conn.execute(
        "UPDATE attempts SET heartbeat = ? WHERE run_id = ? AND attempt = ?",
        (started, run_id, attempt),
    )
    return note


def busy_message(lease: Mapping[str, Any], store: str) -> str:
    """The one-line refusal naming the live holder of ``lease`` and what to do."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease["started"]))
    user = f", user {lease['user']!r}" if lease.get("user") else ""
    age = lease.get("age")
    beat = f", last heartbeat {age:.0f} s ago" if age is not None else ""
    if lease.get("stalled"):
        pid = lease["pid"]
        return (
            f"run {lease['run_id']} in {store!r} is being run by another orchestrator that "
            f"does not respond: pid {pid} on host {lease['host']!r}{user}, attempt "
            f"{lease['attempt']}, since {since}{beat}, and process {pid} is alive (stopped, or "
            f"held up by a step that keeps Python's GIL). Let it go on (`kill -CONT {pid}` if "
            f"it was stopped), or stop that process (`kill {pid}`) and recover again, or "
            f"recover with --force (force=True) to take the run over from it while it lives"
        )
    return (
        f"run {lease['run_id']} in {store!r} is being run by another orchestrator: pid "
        f"{lease['pid']} on host {lease['host']!r}{user}, attempt {lease['attempt']}, since "
        f"{since}{beat}. Wait for it to finish (`sequent status {lease['run_id']}`), or, once "
        f"you have checked that process is gone, recover with --force (force=True); a holder "
        f"that is killed is detected by itself within {STALE_AFTER:.0f} s"
    )


def release(conn: sqlite3.Connection, run_id: str, attempt: int) -> None:
    """Delete this process's lease of ``run_id`` (in the caller's transaction), if it holds it."""
    conn.execute(
        "DELETE FROM leases WHERE run_id = ? AND attempt = ? AND host = ? AND pid = ?",
        (run_id, attempt, HOST, os.getpid()),
    )


def hold(store: str, run_id: str) -> None:
    """Note that this process holds ``run_id`` in ``store`` (alive, whatever its heartbeat)."""
    with _held_lock:
        _held.add((store, run_id))


def drop(store: str, run_id: str) -> None:
    """Note that this process no longer holds the lease of ``run_id`` in ``store``."""
    with _held_lock:
        _held.discard((store, run_id))


def state(result: Any, lease: Mapping[str, Any] | None) -> str:
    """A run's state from its latest attempt's ``result`` and its judged ``lease``.

    ``success`` or ``failure`` when the latest attempt ended; ``running`` while a live
    orchestrator holds the run; ``abandoned`` when it did not end and nothing runs it.
    """
    if result is not None:
        return "success" if result else "failure"
    if lease is not None and lease["alive"]:
        return "running"
    return "abandoned"


class Heartbeat(threading.Thread):
    """Mutates the lease of one attempt: refreshes its heartbeat every ``HEARTBEAT_EVERY`` s.

    ``connect`` opens the thread's own connection (so a beat never waits for the recorder's
    lock). A beat that cannot be written is retried at the next one. A lease found taken over
    by another orchestrator sets ``lost`` (why) and calls ``on_lost`` with it, once, from this
    thread; ``fresh_until`` is the ``time.monotonic()`` until which the lease is known to be
    this attempt's (its last beat plus ``FRESH_FOR``), and ``verify`` checks the lease from any
    thread once that has passed (a stall kept the beats from running).
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        run_id: str,
        attempt: int,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name=f"sequent-heartbeat-{run_id}", daemon=True)
        self.connect = connect
        self.run_id = run_id
        self.attempt = attempt
        self.on_lost = on_lost
        self.stopping = threading.Event()
        self.beats = 0
        self.lost: str | None = None
        self.fresh_until = time.monotonic() + FRESH_FOR

    def run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self.stopping.wait(HEARTBEAT_EVERY) and self.lost is None:
                try:
                    if conn is None:
                        conn = self.connect()
                    holder = self._beat(conn)
                    if holder is not None:
                        self._lose(holder)
                except sqlite3.Error as exc:
                    log.debug("heartbeat of run %s postponed: %s", self.run_id, exc)
        finally:
            if conn is not None:
                conn.close()

    def _beat(self, conn: sqlite3.Connection) -> str | None:
        """Write one heartbeat; None while the lease is this attempt's, else who holds it."""
        began, now = time.monotonic(), time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            held = conn.execute(
                "UPDATE leases SET heartbeat = ? WHERE run_id = ? AND attempt = ? AND host = ? "
                "AND pid = ?",
                (now, self.run_id, self.attempt, HOST, os.getpid()),
            ).rowcount
            holder = None if held == 1 else self._holder(conn)
            conn.execute(
                "UPDATE attempts SET heartbeat = ? WHERE run_id = ? AND attempt = ?",
                (now, self.run_id, self.attempt),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.beats += 1
        if holder is None:
            self.fresh_until = began + FRESH_FOR
        return holder

    def _holder(self, conn: sqlite3.Connection) -> str | None:
        """Who holds the lease if not this attempt (None: this attempt does)."""
        row = conn.execute(
            "SELECT attempt, host, pid FROM leases WHERE run_id = ?", (self.run_id,)
        ).fetchone()
        if row is None:
            return "no orchestrator holds it now (its lease was taken and released)"
        if tuple(row) == (self.attempt, HOST, os.getpid()):
            return None
        return f"attempt {row[0]}'s orchestrator (pid {row[2]} on {row[1]!r}) holds it now"

    def _lose(self, holder: str) -> None:
        if self.lost is not None:
            return
        self.lost = (
            f"another orchestrator took over run {self.run_id} (forced, or this one stalled "
            f"for over {STALE_AFTER:.0f} s): {holder}"
        )
        if self.on_lost is not None:
            self.on_lost(self.lost)

    def verify(self) -> str | None:
        """Check, from the calling thread, that the lease is still this attempt's.

        Returns why it is not (``lost``), or None, and then counts it fresh for ``FRESH_FOR``
        seconds more. A store that cannot be read now is not taken as a loss.
        """
        if self.lost is not None:
            return self.lost
        began = time.monotonic()
        try:
            conn = self.connect()
            try:
                holder = self._holder(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            log.debug("lease of run %s not checked: %s", self.run_id, exc)
            return None
        if holder is None:
            self.fresh_until = max(self.fresh_until, began + FRESH_FOR)
            return None
        self._lose(holder)
        return self.lost

    def stop(self) -> None:
        """End the thread (after the beat in progress, if any)."""
        self.stopping.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=30)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None
