"""How a run that stops early ends in the store: no node left ready or active, retry numbers
right, and start order under a slot or resource limit (SPEC 2.5, 2.7, 3.6, 3.8).

Every test runs a real flow on the thread executor with a file store and reads the store
with plain sqlite3, as a user (or ``sequent show``) would.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import sequent as seq

S = seq.StepStatus


def query(store: Path, sql: str, *params: object) -> list[tuple]:
    conn = sqlite3.connect(store)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def latest(store: Path) -> dict[str, tuple[str, str | None]]:
    """``{"path/sequence": (status, error)}`` from each node's last event."""
    rows = query(store, "SELECT path, sequence, status, error FROM events ORDER BY seq")
    return {f"{path}/{sequence}": (status, error) for path, sequence, status, error in rows}


def started(store: Path) -> list[str]:
    """Leaves in the order the store says they started."""
    rows = query(store, "SELECT path, sequence FROM events WHERE status='active' ORDER BY seq")
    return [f"{path}/{sequence}" for path, sequence in rows]


def new_flow(tmp_path: Path, recover: str | None = None, **config: object) -> seq.Sequent:
    config.setdefault("logdir", str(tmp_path / "logs"))
    return seq.Sequent(
        name="ending",
        store=str(tmp_path / "ending.run.db"),
        executor="thread",
        logging_level=logging.WARNING,
        config=config,
        run_mode=seq.RunMode.recover if recover else seq.RunMode.restart,
        recovery_run=recover,
    )


def noop() -> None:
    return None


def fail() -> None:
    raise RuntimeError("boom")


def fail_once_marked(folder: str) -> None:
    """Fail, leaving one file per call in ``folder``."""
    number = len(list(Path(folder).iterdir())) + 1
    Path(folder, str(number)).touch()
    raise RuntimeError(f"try {number} fails")


def fail_after(folder: str, calls: int, deadline: float = 20.0) -> None:
    """Fail once ``folder`` holds ``calls`` files (another step's tries), within a deadline."""
    limit = time.monotonic() + deadline
    while len(list(Path(folder).iterdir())) < calls:
        if time.monotonic() > limit:
            raise AssertionError(f"{folder} never reached {calls} calls")
        time.sleep(0.01)
    raise RuntimeError("stop the run")


def test_stopped_run_leaves_no_node_ready_and_says_why(tmp_path):
    flow = new_flow(tmp_path, max_concurrent=1)
    boom = flow.add_step("boom", func=fail)
    flow.add_step("waiting", func=noop)  # ready at the start, behind boom for the one slot
    flow.add_step("after", func=noop, requires=((boom, S.active),))
    box = flow.add_step("box", requires=((boom, S.active),))
    box.add_step("inner", func=noop)
    try:
        assert flow.run() is False
        run_id = flow.run_id
    finally:
        flow.close()
    store = tmp_path / "ending.run.db"
    found = latest(store)
    assert found["boom/1"] == ("failure", "RuntimeError: boom")
    for node in ("waiting/1", "after/1", "box/1"):
        status, error = found[node]
        assert status == "skipped", (node, found)
        assert "not started" in error and "stopped after a failure" in error, (node, error)
    assert not [node for node, (status, _) in found.items() if status in ("ready", "active")]
    assert started(store) == ["boom/1"]
    # a recover runs what never started
    flow = new_flow(tmp_path, recover=run_id, max_concurrent=1)
    flow.add_step("boom", func=noop)
    flow.add_step("waiting", func=noop)
    again = flow.add_step("after", func=noop)
    box = flow.add_step("box", requires=((again, S.success),))
    box.add_step("inner", func=noop)
    try:
        assert flow.run() is True
    finally:
        flow.close()
    assert latest(store)["box_inner/1.1"][0] == "success"


def test_stopped_during_a_retry_back_off_records_the_last_try(tmp_path):
    folder = tmp_path / "tries"
    folder.mkdir()
    flow = new_flow(tmp_path, max_concurrent=0)
    flow.add_step("flaky", func=fail_once_marked, args=(str(folder),), retries=5, retry_delay=0.05)
    flow.add_step("stopper", func=fail_after, args=(str(folder), 2))
    try:
        assert flow.run() is False
    finally:
        flow.close()
    rows = query(
        tmp_path / "ending.run.db",
        "SELECT status, retry FROM events WHERE path='flaky' AND status='failure' ORDER BY seq",
    )
    tries = len(list(folder.iterdir()))
    assert tries >= 2
    # one failure per try, numbered 0, 1, ...: the step ends with its last try, no copy of it
    assert rows == [("failure", number) for number in range(tries)], rows


def chain_and_latecomer(tmp_path: Path, **config: object) -> seq.Sequent:
    """``c1 -> c2 -> c3`` and ``late``, ready when ``c1`` started: it must not wait for c3."""
    pool = seq.ResourcePool("one", policy={"resource_limit": 1}).load()
    acquires = [(pool, 1)] if config.pop("pooled", False) else []
    flow = new_flow(tmp_path, **config)
    c1 = flow.add_step("c1", func=noop, acquires=acquires)
    c2 = flow.add_step("c2", func=noop, requires=((c1, S.success),), acquires=acquires)
    flow.add_step("c3", func=noop, requires=((c2, S.success),), acquires=acquires)
    flow.add_step("late", func=noop, requires=((c1, S.active),), acquires=acquires)
    return flow


def test_a_chain_does_not_starve_a_step_ready_earlier_under_max_concurrent_one(tmp_path):
    flow = chain_and_latecomer(tmp_path, max_concurrent=1)
    try:
        assert flow.run() is True
    finally:
        flow.close()
    # late became ready when c1 started, c2 when c1 ended: late first, though defined last
    assert started(tmp_path / "ending.run.db") == ["c1/1", "late/1", "c2/1", "c3/1"]


def test_a_chain_does_not_starve_a_step_ready_earlier_for_a_resource(tmp_path):
    flow = chain_and_latecomer(tmp_path, max_concurrent=0, pooled=True)
    try:
        assert flow.run() is True
    finally:
        flow.close()
    assert started(tmp_path / "ending.run.db") == ["c1/1", "late/1", "c2/1", "c3/1"]


def test_steps_ready_together_start_in_definition_order(tmp_path):
    flow = new_flow(tmp_path, max_concurrent=1)
    first = flow.add_step("first", func=noop)
    for name in ("z", "a", "m"):
        flow.add_step(name, func=noop, requires=((first, S.success),))
    try:
        assert flow.run() is True
    finally:
        flow.close()
    assert started(tmp_path / "ending.run.db") == ["first/1", "z/1", "a/1", "m/1"]
