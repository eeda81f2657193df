"""What a run is doing now, read from its store: running, finished, or abandoned; its counts.

A run is *running* while its orchestrator is alive (the store holds its lease and a fresh
heartbeat), *success* or *failure* once its latest attempt ended, and *abandoned* when it is
unfinished with no live orchestrator (killed, or its machine went down). ``Store.state``
decides; a store without it (an older sequent) is judged by the attempt's host and process.
Reads only.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from typing import Any

#: The states ``run_state`` returns.
STATES = ("running", "success", "failure", "abandoned")


def run_state(store: Any, run_id: str) -> str:
    """``running``, ``success``, ``failure`` or ``abandoned`` for run ``run_id``."""
    decide = getattr(store, "state", None)
    if callable(decide):
        return str(decide(run_id))
    attempts = store.attempts(run_id)
    last = attempts[-1] if attempts else {}
    if last.get("ended") is not None:
        return "success" if last.get("result") else "failure"
    if last.get("host") == socket.gethostname() and _alive(last.get("pid")):
        return "running"
    return "abandoned"


def snapshot(store: Any, run_id: str) -> dict[str, Any]:
    """Run ``run_id`` as ``sequent status`` shows it: state, rows, counts, what runs now.

    ``counts`` counts step instances that run code (leaves) by their latest status, those
    the recorded structure knows with no event yet as ``not started``; ``running`` lists those
    active now (or, in an abandoned run, when it died), oldest first.
    """
    run = store.run(run_id)
    attempts = store.attempts(run_id)
    nodes = [row for row in store.nodes(run_id, unrecorded=True) if row.get("kind") != "container"]
    counts = Counter(row["status"] for row in nodes)
    running = sorted(
        (row for row in nodes if row["status"] == "active"), key=lambda r: r.get("started") or 0
    )
    lease = None
    leases = getattr(store, "lease", None)
    if callable(leases):
        lease = leases(run_id)
    return {
        "run": run,
        "state": run_state(store, run_id),
        "attempt": attempts[-1] if attempts else None,
        "lease": lease,
        "counts": dict(counts),
        "total": len(nodes),
        "running": running,
        "at": time.time(),
    }


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["STATES", "run_state", "snapshot"]
