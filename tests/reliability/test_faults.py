"""Fault injection, bounded in time and count: signals, dying workers, a full, read-only or
locked store. Every test asserts what the store holds afterwards, and that a recover finishes
the work without rerunning what succeeded.

The orchestrator runs in a subprocess (``FLOW_SCRIPT``) wherever a signal is sent to it. Each
step appends ``path@sequence recovery start|end`` to ``calls.log`` and touches
``started/<node>``; a held step waits (at most 30 s) for a ``go`` file that never comes, so the
test knows, from the files, exactly which steps are running when it strikes.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import sequent as seq
from sequent.errors import StoreError
from sequent.store import open_store

from .conftest import tally

S = seq.StepStatus
LIMIT = 60.0  # seconds any subprocess may take; the runs here take about one

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FLOW_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import sequent as seq

    here, executor, mode, hold = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0

    def work(folder, held, pause):
        context = seq.current()
        node = f"{context.name}@{context.sequence}"
        with open(Path(folder, "calls.log"), "a") as log:
            log.write(f"{node} {context.recovery} start\\n")
        Path(folder, "started", node).touch()
        if held:
            deadline = time.monotonic() + 30
            while not Path(folder, "go").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(pause)
        with open(Path(folder, "calls.log"), "a") as log:
            log.write(f"{node} {context.recovery} end\\n")
        return node

    held = hold == "hold"
    args = (str(here), held, pause)
    quick = (str(here), False, pause)
    flow = seq.Sequent(
        name="faults", store=str(here / "flow.run.db"), executor=executor,
        run_mode=seq.RunMode[mode], logging_level="INFO",
        config={"max_concurrent": 0, "logdir": str(here / "logs")},
    )
    prep = flow.add_step("prep", func=work, args=quick)
    box = flow.add_step("box", repeats=[1, 2], requires=(prep, seq.STEP_SUCCESS))
    inner = box.add_step("inner", repeats=["x", "y"])
    w1 = inner.add_step("w1", func=work, args=args)
    inner.add_step("w2", func=work, args=args)
    inner.add_step("w3", func=work, args=quick, requires=(w1, seq.STEP_COMPLETE))
    box.add_step("side", func=work, args=args)
    other = flow.add_step("other", func=work, args=args, requires=(prep, seq.STEP_SUCCESS))
    flow.add_step("tail", func=work, args=quick,
                  requires=((box, seq.STEP_SUCCESS), (other, seq.STEP_SUCCESS)))
    result = flow.run()
    print("result", result, flow.run_id, flush=True)
    flow.close()
    sys.exit(0 if result else 1)
    """
)

#: Every node of FLOW_SCRIPT's flow, and the leaves among them.
LEAVES = (
    ["prep@1", "other@1", "tail@1"]
    + [f"box_side@1.{i}" for i in (1, 2)]
    + [f"box_inner_{w}@1.{i}.{j}" for i in (1, 2) for j in (1, 2) for w in ("w1", "w2", "w3")]
)
CONTAINERS = ["box@1"] + [f"box_inner@1.{i}" for i in (1, 2)]


class Work:
    """A folder for one flow: its script, store, call log and markers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "started").mkdir(parents=True, exist_ok=True)
        self.script = folder / "flow_script.py"
        self.script.write_text(FLOW_SCRIPT, encoding="utf-8")
        self.store = folder / "flow.run.db"

    def start(self, executor: str, mode: str, hold: bool, pause: float = 0.0) -> Any:
        args = [sys.executable, str(self.script), str(self.folder), executor, mode]
        args += ["hold" if hold else "free", str(pause)]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, executor: str, mode: str) -> subprocess.CompletedProcess[str]:
        process = self.start(executor, mode, hold=False)
        out, err = process.communicate(timeout=LIMIT)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def started(self) -> set[str]:
        return {path.name for path in (self.folder / "started").iterdir()}

    def wait_started(self, nodes: set[str], process: Any) -> None:
        deadline = time.monotonic() + LIMIT
        while not nodes <= self.started():
            if process.poll() is not None:
                pytest.fail(f"the flow ended early: {process.communicate()}")
            assert time.monotonic() < deadline, f"never started: {nodes - self.started()}"
            time.sleep(0.01)

    def calls(self) -> list[tuple[str, int, str]]:
        path = self.folder / "calls.log"
        if not path.exists():
            return []
        rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines()]
        return [(node, int(recovery), what) for node, recovery, what in rows]

    def latest(self) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
        """The run id, each node's latest status, and the attempts."""
        store = open_store(str(self.store))
        try:
            (run,) = store.runs()
            nodes = store.nodes(run["run_id"])
            attempts = store.attempts(run["run_id"])
        finally:
            store.close()
        status = {f"{row['path']}@{row['sequence']}": row["status"] for row in nodes}
        return run["run_id"], status, attempts


def _available(executor: str) -> None:
    if executor == "process":
        try:
            import sequent.executors.process  # noqa: F401
        except ImportError as exc:
            pytest.skip(f"executor 'process' unavailable: {exc}")


# -- SIGTERM with nested containers and several steps running ------------------------------


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_sigterm_mid_run_records_interrupted_and_recover_finishes(executor, tmp_path):
    """SPEC 3.8 with four steps running at two nesting levels when SIGTERM arrives."""
    _available(executor)
    work = Work(tmp_path)
    process = work.start(executor, "restart", hold=True)
    running = {"box_inner_w1@1.1.1", "box_inner_w2@1.1.1", "box_side@1.1", "other@1"}
    try:
        work.wait_started(running, process)
        process.send_signal(signal.SIGTERM)
        tally("faults injected (SIGTERM)")
        out, err = process.communicate(timeout=LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
    # The run is recorded, then SIGTERM is handed on to Python's default handler.
    assert process.returncode == -signal.SIGTERM, (process.returncode, out, err)
    run_id, status, attempts = work.latest()
    assert status == {
        "prep@1": "success",
        "box@1": "interrupted",  # containers cut short are interrupted, not failed
        "box_inner@1.1": "interrupted",
        "box_inner_w1@1.1.1": "interrupted",
        "box_inner_w2@1.1.1": "interrupted",
        "box_inner_w3@1.1.1": "skipped",  # needs w1 complete, which it can no longer be
        "box_side@1.1": "interrupted",
        "other@1": "interrupted",
        "tail@1": "skipped",
    }
    assert [(a["attempt"], a["result"]) for a in attempts] == [(0, False)]
    assert work.started() == running | {"prep@1"}

    again = work.run(executor, "recover")
    assert again.returncode == 0, again.stderr
    assert f"result True {run_id}" in again.stdout
    run_id, status, attempts = work.latest()
    assert set(status) == set(LEAVES) | set(CONTAINERS)
    assert set(status.values()) == {"success"}
    assert [(a["attempt"], a["result"]) for a in attempts] == [(0, False), (1, True)]
    starts = Counter(node for node, _, what in work.calls() if what == "start")
    assert starts["prep@1"] == 1, "a recorded success ran again"
    assert {node for node, n in starts.items() if n == 2} == running  # and nothing else
    assert all(starts[node] == 1 for node in LEAVES if node not in running)


# -- SIGKILL of the orchestrator at random points ------------------------------------------


def _events(store: Path) -> int:
    """How many status changes the store has committed (0 before it exists)."""
    if not store.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0  # not created yet, or mid-creation


# tests/store/test_store_crash.py kills a flat thread flow 12 times; these add nested
# containers, concurrent steps and the process executor (whose workers must not outlive it).
KILL_POINTS = 6
KILL_SEED = 20261128


@pytest.mark.parametrize("point", range(KILL_POINTS))
def test_sigkill_at_a_random_point_then_recover_finishes(point, tmp_path):
    """SPEC 4.4: kill -9 at a random instant of a run (seeded: the first status change is
    committed, then a random 0-0.6 s passes; a full run takes about 0.5 s); a recover in a new
    process finishes, and no step whose latest recorded status was success runs again."""
    rng = random.Random(KILL_SEED + point)
    executor = rng.choice(["thread", "process"])
    _available(executor)
    work = Work(tmp_path)
    delay = rng.uniform(0.0, 0.6)
    process = work.start(executor, "restart", hold=False, pause=0.04)
    deadline = time.monotonic() + LIMIT
    try:
        while _events(work.store) == 0 and process.poll() is None:
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.002)
        time.sleep(delay)  # the fault's random instant; nothing below depends on its timing
        process.kill()
        tally("faults injected (SIGKILL of the orchestrator)")
        process.communicate(timeout=LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
    if executor == "process":
        _no_orphan_workers(tmp_path)
    at_kill = _events(work.store)
    before = work.latest()[1]
    calls_before = len(work.calls())

    again = work.run(executor, "recover")
    assert again.returncode == 0, (delay, again.stderr)
    run_id, status, attempts = work.latest()
    assert set(status) == set(LEAVES) | set(CONTAINERS)
    assert set(status.values()) == {"success"}, (delay, status)
    assert attempts[-1]["result"] is True
    rerun = {node for node, recovery, what in work.calls()[calls_before:] if what == "start"}
    wrongly = {node for node in rerun if before.get(node) == "success"}
    assert not wrongly, (
        f"killed {delay:.3f} s in ({at_kill} changes recorded); these had succeeded and ran "
        f"again: {wrongly}"
    )
    # Everything that had not succeeded ran in the recover (a replayed success runs nothing).
    assert rerun == {node for node in LEAVES if before.get(node) != "success"}


def _no_orphan_workers(folder: Path) -> None:
    """Workers of a killed orchestrator must not keep running steps (they see the pipe close)."""
    deadline = time.monotonic() + 10
    while True:
        pids = [p for p in _worker_pids() if str(folder) in _cmdline_env(p)]
        if not pids or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not pids, f"worker processes outlived their orchestrator: {pids}"


def _worker_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()] if os.path.isdir("/proc") else []


def _cmdline_env(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


# -- a dying worker, recorded in the store, then recovered ---------------------------------


def die_first_time(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(7)
    return "recovered"


def steady(log: str) -> str:
    context = seq.current()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"{context.name}@{context.sequence}\n")
    return "ok"


def test_a_dead_worker_is_recorded_and_only_its_step_reruns(tmp_path):
    """os._exit in a step nested two levels deep while siblings run: the store shows that
    node failed with the worker's death, the siblings succeeded; a recover reruns only it."""
    _available("process")
    store = str(tmp_path / "flow.run.db")
    log = str(tmp_path / "calls.log")
    results = []
    for mode in (seq.RunMode.restart, seq.RunMode.recover):
        flow = seq.Sequent(
            name="death",
            store=store,
            executor="process",
            run_mode=mode,
            logging_level=logging.WARNING,
            config={"max_concurrent": 0, "logdir": str(tmp_path / "logs")},
        )
        box = flow.add_step("box", repeats=[1, 2])
        inner = box.add_step("inner")
        inner.add_step("doomed", func=die_first_time, args=(str(tmp_path / "died"),))
        inner.add_step("sibling", func=steady, args=(log,))
        box.add_step("beside", func=steady, args=(log,))
        flow.add_step("apart", func=steady, args=(log,))
        results.append(flow.run())
        run_id = flow.run_id
        flow.close()
        if mode is seq.RunMode.restart:
            tally("faults injected (worker death, file store)")
            db = open_store(store)
            try:
                rows = {f"{r['path']}@{r['sequence']}": r for r in db.nodes(run_id)}
            finally:
                db.close()
            assert {k: r["status"] for k, r in rows.items()} == {
                "box@1": "failure",
                "box_inner@1.1": "failure",
                "box_inner_doomed@1.1.1": "failure",
                "box_inner_sibling@1.1.1": "success",
                "box_beside@1.1": "success",
                "apart@1": "success",
            }
            error = rows["box_inner_doomed@1.1.1"]["error"]
            assert "WorkerDied" in error and "exit code 7" in error, error
    assert results == [False, True]
    calls = Counter(Path(log).read_text(encoding="utf-8").split())
    assert calls == {
        "box_inner_sibling@1.1.1": 1,
        "box_beside@1.1": 1,
        "apart@1": 1,
        "box_inner_sibling@1.2.1": 1,
        "box_beside@1.2": 1,
    }


def test_process_flow_run_from_successive_threads_loses_no_step(tmp_path):
    """A thread that ends must not take the pool's workers with it (found by the property
    tests: Linux ties a worker's parent-death signal to the thread that started it, so idle
    workers started by a finished thread were killed and the next steps sent to them failed
    with ``WorkerDied ... SIGKILL``)."""
    _available("process")
    flow = seq.Sequent(
        name="threads",
        store=":memory:",
        executor="process",
        logging_level=logging.WARNING,
        config={"max_concurrent": 0, "logdir": str(tmp_path / "logs")},
    )
    for number in range(4):
        flow.add_step(f"s{number}", func=os.getpid)
    results: list[bool] = []
    try:
        for _ in range(8):
            thread = threading.Thread(target=lambda: results.append(flow.run()))
            thread.start()
            thread.join(LIMIT)
            assert not thread.is_alive()
    finally:
        flow.close()
    tally("faults injected (thread ends under a warm process pool)", 7)
    assert results == [True] * 8


# -- the store fails under a run: full, read-only, locked ----------------------------------


def _store_flow(tmp_path: Path, executor: str, fault: Any, mode: seq.RunMode) -> seq.Sequent:
    """a -> b (injects ``fault`` into the store's connection, once) -> box of 3 x 20 leaves."""
    flow = seq.Sequent(
        name="store-fault",
        store=str(tmp_path / "flow.run.db"),
        executor=executor,
        run_mode=mode,
        logging_level=logging.WARNING,
        config={"max_concurrent": 0, "logdir": str(tmp_path / "logs")},
    )
    log = str(tmp_path / "calls.log")
    marker = str(tmp_path / "struck")

    def strike() -> None:
        steady(log)
        if not os.path.exists(marker):
            Path(marker).touch()
            fault(flow)

    a = flow.add_step("a", func=steady, args=(log,))
    b = flow.add_step("b", func=strike, requires=(a, S.success))
    box = flow.add_step("box", repeats=range(3), requires=(b, S.success))
    for number in range(20):
        box.add_step(f"x{number}", func=steady, args=(log,))
    return flow


def _fill_the_disk(flow: seq.Sequent) -> None:
    """From now on the store's file may not grow: SQLite reports 'database or disk is full'."""
    conn = flow._store._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def _make_read_only(flow: seq.Sequent) -> None:
    """From now on the store's connection may not write (as a file turned read-only)."""
    flow._store._conn.execute("PRAGMA query_only = ON")


@pytest.mark.parametrize(
    "fault, words",
    [(_fill_the_disk, "disk is full"), (_make_read_only, "readonly database")],
    ids=["disk-full", "read-only"],
)
@pytest.mark.parametrize("executor", ["serial", "thread"])
def test_store_that_cannot_be_written_mid_run(fault, words, executor, tmp_path):
    """The run stops with a StoreError that says why; the file still opens as a store, holds
    nothing inconsistent, and a recover (once the store is writable) finishes the work."""
    flow = _store_flow(tmp_path, executor, fault, seq.RunMode.restart)
    with pytest.raises(StoreError) as caught:
        flow.run()
    tally("faults injected (store full or read-only mid-run)")
    run_id = flow.run_id
    flow.close()
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert words in message and str(tmp_path / "flow.run.db") in message, message
    assert "check the disk" in message

    store = open_store(str(tmp_path / "flow.run.db"))  # still a store, still readable
    try:
        (run,) = store.runs()
        assert run["run_id"] == run_id and run["result"] is None  # it never finished
        before = {f"{r['path']}@{r['sequence']}": r["status"] for r in store.nodes(run_id)}
    finally:
        store.close()
    assert before["a@1"] == "success"
    # Nothing is recorded as finished that did not finish; b may have run without its
    # success being committed, which is why a recover reruns what is not success.
    assert set(before.values()) <= {"ready", "active", "success"}
    calls_before = Path(tmp_path / "calls.log").read_text(encoding="utf-8").split()

    again = _store_flow(tmp_path, executor, fault, seq.RunMode.recover)
    assert again.run() is True
    again.close()
    store = open_store(str(tmp_path / "flow.run.db"))
    try:
        after = {f"{r['path']}@{r['sequence']}": r["status"] for r in store.nodes(run_id)}
        attempts = store.attempts(run_id)
    finally:
        store.close()
    assert len(after) == 2 + 1 + 60 and set(after.values()) == {"success"}
    assert [a["result"] for a in attempts] == [None, True]
    calls = Counter(Path(tmp_path / "calls.log").read_text(encoding="utf-8").split())
    for node, count in calls.items():
        if before.get(node) == "success":
            assert count == 1, f"{node} succeeded before the fault and ran again"
    assert Counter(calls_before)["a@1"] == 1


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    conn.close()
    """
)


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_store_locked_by_another_writer_for_a_while(executor, tmp_path):
    """Another process holds the store's write lock for 1.5 s mid-run: the run waits for it,
    then finishes, and every change is recorded."""
    _available(executor)
    locker = tmp_path / "locker.py"
    locker.write_text(LOCKER, encoding="utf-8")
    store = str(tmp_path / "flow.run.db")
    log = str(tmp_path / "calls.log")

    flow = seq.Sequent(
        name="locked",
        store=store,
        executor=executor,
        logging_level=logging.WARNING,
        config={"max_concurrent": 0, "logdir": str(tmp_path / "logs")},
    )
    a = flow.add_step("a", func=steady, args=(log,))
    lock = flow.add_step(
        "lock", func=hold_the_store, args=(str(locker), store, 1.5), requires=(a, S.success)
    )
    box = flow.add_step("box", repeats=range(2), requires=(lock, S.success))
    for number in range(10):
        box.add_step(f"x{number}", func=steady, args=(log,))
    started = time.monotonic()
    assert flow.run() is True
    took = time.monotonic() - started
    tally("faults injected (store locked by another writer)")
    run_id = flow.run_id
    flow.close()
    assert took >= 1.4, f"the run did not wait for the lock ({took:.2f} s)"
    db = open_store(store)
    try:
        rows = db.nodes(run_id)
        events = db.events(run_id)
        (run,) = db.runs()
    finally:
        db.close()
    assert run["result"] is True
    assert len(rows) == 2 + 1 + 20 and {r["status"] for r in rows} == {"success"}
    # every leaf went ready -> active -> success, recorded in that order
    per_node: dict[str, list[str]] = {}
    for event in events:
        per_node.setdefault(f"{event['path']}@{event['sequence']}", []).append(event["status"])
    assert all(statuses == ["ready", "active", "success"] for statuses in per_node.values()), (
        per_node
    )


def hold_the_store(locker: str, store: str, seconds: float) -> None:
    """Start another process that takes the store's write lock; return once it holds it."""
    process = subprocess.Popen(
        [sys.executable, locker, store, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
