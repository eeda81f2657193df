"""SPEC 4.2, 4.3: recover runs: what reruns, per-step policies, structure changes, bad inputs."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import sequent as seq
from sequent.store import open_store

from . import storehelp

ROOT = Path(__file__).resolve().parents[2]
DOING = re.compile(r"doing what (prog\d) is doing \((\S+)\)")


class Calls:
    """Which step instances ran, with the recovery number each saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, int]] = []

    def __call__(self, fail: bool = False) -> str:
        context = seq.current()
        assert context is not None
        with self.lock:
            self.seen.append((context.name, context.sequence, context.recovery))
        if fail:
            raise RuntimeError(f"{context.name} failed on purpose")
        return context.name

    def names(self) -> list[str]:
        return [f"{name}/{sequence}" for name, sequence, _ in self.seen]

    def clear(self) -> None:
        self.seen.clear()


@pytest.fixture
def calls() -> Calls:
    return Calls()


def flow_on(store: Path, mode=seq.RunMode.restart, **options) -> seq.Sequent:
    return storehelp.flow_on(store, mode, **{"name": "recovery", **options})


def latest(store: Path, run_id: str | None = None) -> dict[str, dict]:
    """Each node's latest row, keyed ``path/sequence``."""
    reader = open_store(str(store))
    try:
        run_id = run_id or reader.runs()[0]["run_id"]
        return {f"{row['path']}/{row['sequence']}": row for row in reader.nodes(run_id)}
    finally:
        reader.close()


def run_log(store: Path, flow: seq.Sequent) -> str:
    (path,) = (store.parent / "logs" / flow.name).glob(f"{flow.run_id}/run.log")
    return path.read_text()


# -- the seed's recovery example --------------------------------------------------------------


def test_seed_recovery_example(tmp_path):
    shutil.copy(ROOT / "examples" / "seed_recovery.py", tmp_path)
    done = subprocess.run(
        [sys.executable, "seed_recovery.py"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # its logs go under the default logdir
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout
    first, second = done.stdout.split("Processing finished with: failure ]")
    assert DOING.findall(second) == [
        ("prog1", "s1_s11_s111/1.2.2"),
        ("prog2", "s1_s11_s112/1.2.2"),
        ("prog3", "s1_s12/1.2"),
        ("prog4", "s2/1"),
    ]
    assert second.rstrip().endswith("Processing finished with: success ]")
    assert len(DOING.findall(first)) == 8

    store = tmp_path / "seed_recovery.run.db"  # the default store, next to the script
    assert f"Sequent store file: {store}" in first
    reader = open_store(str(store))
    try:
        (run,) = reader.runs()
        assert (run["flow_name"], run["result"]) == ("seed_recovery", True)
        attempts = reader.attempts(run["run_id"])
        assert [(a["attempt"], a["mode"], a["result"]) for a in attempts] == [
            (0, "restart", False),
            (1, "recover", True),
        ]
        first_rows = reader.nodes(run["run_id"], attempt=0)
        failed = [f"{r['path']}/{r['sequence']}" for r in first_rows if r["status"] == "failure"]
        assert failed == ["s1/1", "s1_s11/1.2", "s1_s11_s111/1.2.2"]
        (cause,) = [r for r in first_rows if r["path"] == "s1_s11_s111" and r["error"]]
        assert cause["error"] == "Exception: prog1 failed (s1_s11_s111/1.2.2)"
        assert 'line 11, in prog' in cause["traceback"]
        rows = reader.nodes(run["run_id"], attempt=1)
        leaves = [r for r in rows if r["kind"] == "step"]
        executed = [f"{r['path']}/{r['sequence']}" for r in leaves if not r["replayed"]]
        assert executed == ["s1_s11_s111/1.2.2", "s1_s11_s112/1.2.2", "s1_s12/1.2", "s2/1"]
        replayed = [f"{r['path']}/{r['sequence']}" for r in leaves if r["replayed"]]
        assert replayed == [
            "s1_s11_s111/1.1.1",
            "s1_s11_s111/1.1.2",
            "s1_s11_s111/1.2.1",
            "s1_s11_s112/1.1.1",
            "s1_s11_s112/1.1.2",
            "s1_s11_s112/1.2.1",
            "s1_s12/1.1",
        ]
        assert {r["status"] for r in rows} == {"success"}
        values = {f"{r['path']}/{r['sequence']}": r["value"] for r in leaves}
        assert values["s2/1"] == '"prog4"'  # the returned string, as JSON
    finally:
        reader.close()


# -- what a recover reruns --------------------------------------------------------------------


def build_policies(store: Path, calls: Calls, mode, fail: bool) -> seq.Sequent:
    flow = flow_on(store, mode, config={"stop_on_exception": False})
    flow.add_step("plain", func=calls)
    flow.add_step("again", func=calls, recovery={seq.StepStatus.success: seq.StepReplay.rerun})
    forgiven = flow.add_step(
        "forgiven",
        func=calls,
        kwargs={"fail": fail},
        recovery={seq.StepStatus.failure: seq.StepReplay.skip},
    )
    flow.add_step("after", func=calls, requires=((forgiven, seq.StepStatus.success),))
    return flow


def test_per_step_recovery_policies(tmp_path, calls):
    store = tmp_path / "flow.run.db"
    with build_policies(store, calls, seq.RunMode.restart, fail=True) as flow:
        assert flow.run() is False
    assert calls.names() == ["plain/1", "again/1", "forgiven/1"]
    first = flow.run_id

    calls.clear()
    with build_policies(store, calls, seq.RunMode.recover, fail=True) as flow:
        assert flow.run() is True
    assert flow.run_id == first
    # success -> rerun reruns; failure -> skip is marked success without running, so its
    # dependent, never reached before, runs now.
    assert calls.seen == [("again", "1", 1), ("after", "1", 1)]
    rows = latest(store)
    assert rows["forgiven/1"]["status"] == "success" and rows["forgiven/1"]["replayed"]
    assert rows["plain/1"]["replayed"] and not rows["again/1"]["replayed"]

    calls.clear()
    with build_policies(store, calls, seq.RunMode.recover, fail=True) as flow:
        assert flow.run() is True
    assert calls.seen == [("again", "1", 2)]


def test_recovering_a_run_that_succeeded_runs_nothing(tmp_path, calls):
    store = tmp_path / "flow.run.db"
    for mode in (seq.RunMode.restart, seq.RunMode.recover):
        with flow_on(store, mode) as flow:
            box = flow.add_step("box", repeats=[1, 2])
            first = box.add_step("first", func=calls)
            box.add_step("second", func=calls, requires=((first, seq.STEP_SUCCESS),))
            assert flow.run() is True
        if mode is seq.RunMode.restart:
            assert len(calls.seen) == 4
            calls.clear()
    assert calls.seen == []
    rows = latest(store)
    assert all(row["replayed"] for row in rows.values() if row["kind"] == "step")
    assert {(row["attempt"], row["status"]) for row in rows.values()} == {(1, "success")}


def test_get_step_recovery_counts_attempts(tmp_path):
    store = tmp_path / "flow.run.db"
    seen = []

    def step(flow: seq.Sequent) -> None:
        seen.append(flow.get_step_recovery())
        raise RuntimeError("again")

    for mode in (seq.RunMode.restart, seq.RunMode.recover, seq.RunMode.recover):
        with flow_on(store, mode) as flow:
            flow.add_step("s", func=step, kwargs={"flow": flow})
            assert flow.run() is False
    assert seen == [0, 1, 2]


def test_recovery_run_picks_the_run_default_is_the_latest(tmp_path, calls):
    store = tmp_path / "flow.run.db"

    def build(mode, fail_at: str, recovery_run=None) -> seq.Sequent:
        flow = flow_on(store, mode, recovery_run=recovery_run)
        previous = None
        for name in ("a", "b", "c"):
            previous = flow.add_step(
                name,
                func=calls,
                kwargs={"fail": name == fail_at},
                requires=((previous, seq.STEP_SUCCESS),) if previous else (),
            )
        return flow

    run_ids = []
    for fail_at in ("a", "b"):
        with build(seq.RunMode.restart, fail_at) as flow:
            assert flow.run() is False
            run_ids.append(flow.run_id)
    calls.clear()
    with build(seq.RunMode.recover, "", recovery_run=run_ids[0]) as flow:
        assert flow.run() is True
    assert (flow.run_id, calls.names()) == (run_ids[0], ["a/1", "b/1", "c/1"])
    calls.clear()
    with build(seq.RunMode.recover, "") as flow:
        assert flow.run() is True
    assert (flow.run_id, calls.names()) == (run_ids[1], ["b/1", "c/1"])


def test_structure_change_is_matched_by_path_and_sequence_and_logged(tmp_path, calls):
    store = tmp_path / "flow.run.db"
    with flow_on(store, config={"stop_on_exception": False}) as flow:
        kept = flow.add_step("kept", func=calls)
        flow.add_step("broken", func=calls, kwargs={"fail": True})
        flow.add_step("dropped", func=calls, requires=((kept, seq.STEP_SUCCESS),))
        loop = flow.add_step("loop", repeats=[1, 2], requires=((kept, seq.STEP_SUCCESS),))
        loop.add_step("inner", func=calls)
        assert flow.run() is False
    calls.clear()
    with flow_on(store, seq.RunMode.recover) as flow:
        kept = flow.add_step("kept", func=calls)
        flow.add_step("broken", func=calls)
        flow.add_step("added", func=calls)
        loop = flow.add_step("loop", repeats=[1, 2, 3], requires=((kept, seq.STEP_SUCCESS),))
        loop.add_step("inner", func=calls)
        assert flow.run() is True
    # kept and the first two iterations of inner had succeeded: skipped. The rest runs.
    assert sorted(calls.names()) == ["added/1", "broken/1", "loop_inner/1.3"]
    text = run_log(store, flow)
    assert re.search(r"\]\[ INFO \]\[ The flow's structure changed since run \w+", text)
    assert "[ INFO ][ Steps added: added ]" in text
    assert "[ INFO ][ Steps removed: dropped ]" in text
    assert "[ INFO ][ Steps changed: loop ]" in text
    assert "[ INFO ][ Nodes added (will run): added/1, loop_inner/1.3 ]" in text
    assert "[ INFO ][ Nodes removed (ignored): dropped/1 ]" in text
    reader = open_store(str(store))
    try:
        run_id = reader.runs()[0]["run_id"]
        assert [n["path"] for n in reader.structure(run_id, attempt=0)["nodes"]].count(
            "loop_inner"
        ) == 2
        assert [n["path"] for n in reader.structure(run_id)["nodes"]].count("loop_inner") == 3
    finally:
        reader.close()


# -- bad inputs: a clear error, nothing run, nothing written ----------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def attempt_run(store: Path, mode, calls: Calls, **options) -> seq.Sequent:
    flow = flow_on(store, mode, **options)
    flow.add_step("only", func=calls)
    return flow


def test_recover_without_a_store_file(tmp_path, calls):
    store = tmp_path / "missing.run.db"
    flow = attempt_run(store, seq.RunMode.recover, calls)
    with pytest.raises(seq.RecoveryError) as caught:
        flow.run()
    assert isinstance(caught.value, LookupError)
    assert str(store) in str(caught.value) and "'recovery'" in str(caught.value)
    assert "RunMode.restart" in str(caught.value)
    assert not store.exists() and calls.seen == []


def test_recover_when_the_store_has_no_run_of_this_flow(tmp_path, calls):
    store = tmp_path / "flow.run.db"
    with attempt_run(store, seq.RunMode.restart, calls, name="other") as flow:
        assert flow.run() is True
    calls.clear()
    before = snapshot(tmp_path)
    with attempt_run(store, seq.RunMode.recover, calls) as flow:
        with pytest.raises(seq.RecoveryError, match="holds no run of flow 'recovery'") as caught:
            flow.run()
    assert "it holds runs of 'other'" in str(caught.value)
    assert calls.seen == [] and snapshot(tmp_path) == before


def test_recover_an_unknown_run_id(tmp_path, calls):
    store = tmp_path / "flow.run.db"
    with attempt_run(store, seq.RunMode.restart, calls) as flow:
        assert flow.run() is True
        known = flow.run_id
    calls.clear()
    before = snapshot(tmp_path)
    with attempt_run(store, seq.RunMode.recover, calls, recovery_run="nosuchid") as flow:
        with pytest.raises(seq.RecoveryError, match="no run with id 'nosuchid'") as caught:
            flow.run()
    assert known in str(caught.value)  # it lists the runs there are
    assert calls.seen == [] and snapshot(tmp_path) == before


def foreign_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.commit()
    conn.close()


def damaged_store(path: Path, calls: Calls) -> None:
    with attempt_run(path, seq.RunMode.restart, calls) as flow:
        assert flow.run() is True
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # page 1 after the header: the schema
    path.write_bytes(bytes(data))


BAD_FILES = {
    "text": (lambda path, calls: path.write_text("name,value\nx,1\n"), "not an SQLite database"),
    "foreign": (lambda path, calls: foreign_database(path), "holds tables customers"),
    "damaged": (damaged_store, "damaged"),
}


@pytest.mark.parametrize("mode", [seq.RunMode.restart, seq.RunMode.recover])
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_a_file_that_is_not_a_usable_store(tmp_path, calls, kind, mode):
    store = tmp_path / "flow.run.db"
    make, says = BAD_FILES[kind]
    make(store, calls)
    calls.clear()
    before = snapshot(tmp_path)
    flow = attempt_run(store, mode, calls)
    with pytest.raises(seq.StoreError) as caught:
        flow.run()
    flow.close()
    assert isinstance(caught.value, ValueError)
    assert str(store) in str(caught.value) and says in str(caught.value)
    assert calls.seen == [] and snapshot(tmp_path) == before


def test_a_truncated_store_is_refused_by_recover(tmp_path, calls):
    store = tmp_path / "flow.run.db"
    with attempt_run(store, seq.RunMode.restart, calls) as flow:
        flow.add_step("more", func=calls, repeats=None)
        assert flow.run() is True
    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 2])
    calls.clear()
    before = snapshot(tmp_path)
    flow = attempt_run(store, seq.RunMode.recover, calls)
    with pytest.raises(seq.StoreError, match="damaged"):
        flow.run()
    flow.close()
    assert calls.seen == [] and snapshot(tmp_path) == before


def test_a_directory_is_not_a_store(tmp_path, calls):
    flow = attempt_run(tmp_path, seq.RunMode.restart, calls)
    with pytest.raises(seq.StoreError, match="is a directory"):
        flow.run()
    assert calls.seen == []


def test_memory_store_recovers_within_its_flow_only(tmp_path, calls):
    flow = flow_on(Path(":memory:"), logs=tmp_path / "logs")
    flow.add_step("a", func=calls)
    flow.add_step("b", func=calls, kwargs={"fail": True})
    with flow:
        assert flow.run() is False
        flow.run_mode = seq.RunMode.recover
        assert flow.run() is False  # b still fails; a is skipped
    assert calls.names() == ["a/1", "b/1", "b/1"]
    other = flow_on(Path(":memory:"), seq.RunMode.recover, logs=tmp_path / "logs")
    other.add_step("a", func=calls)
    with pytest.raises(seq.RecoveryError, match="in-memory store lasts only as long"):
        other.run()
    other.close()


def test_recovering_a_run_of_another_flow_name_is_said_as_a_warning(tmp_path, calls, caplog):
    store = tmp_path / "flows.run.db"
    first = flow_on(store, name="B")
    first.add_step("s1", func=calls)
    first.add_step("s2", func=calls, kwargs={"fail": True})
    assert first.run() is False
    run_id = first.run_id
    first.close()
    other = flow_on(store, seq.RunMode.recover, name="A", recovery_run=run_id)
    other.add_step("s1", func=calls)
    other.add_step("s2", func=calls)
    with caplog.at_level(logging.INFO, logger="sequent"):
        assert other.run() is True
    other.close()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(run_id in line and "'B'" in line and "'A'" in line for line in warned), warned


def until_failure_recorded(store: str, path: str) -> None:
    """Wait until ``path``'s failed try is in ``store`` (30 s bound a hang)."""
    deadline = time.monotonic() + 30
    while not storehelp.query(
        Path(store), "SELECT 1 FROM events WHERE path = ? AND status = 'failure'", path
    ):
        assert time.monotonic() < deadline, f"{path}'s failure never reached the store"
        time.sleep(0.01)


def fail_once_seen(store: str, path: str) -> None:
    """A step that fails once ``path``'s failed try is in ``store``."""
    until_failure_recorded(store, path)
    raise RuntimeError("stop the run")


def test_a_step_waiting_for_its_retry_when_the_run_stops_keeps_one_row_per_try(tmp_path, calls):
    """``r`` fails and waits 60 s for its retry; ``c`` then fails and stops the run. r's one
    try is recorded once, and it ends with it (no second copy of that failure)."""
    store = tmp_path / "retry.run.db"
    flow = flow_on(store, config={"max_concurrent": 0})
    flow.add_step("r", func=calls, kwargs={"fail": True}, retries=2, retry_delay=60)
    flow.add_step("c", func=fail_once_seen, args=(str(store), "r"))
    assert flow.run() is False
    flow.close()
    assert [name for name in calls.names()] == ["r/1"]
    rows = storehelp.query(store, "SELECT status, retry FROM events WHERE path = 'r' ORDER BY seq")
    assert rows == [("ready", 0), ("active", 0), ("failure", 0)], rows


def interrupt_once_seen(store: str, path: str) -> None:
    """A step that sends SIGINT to its own process once ``path``'s failed try is in ``store``."""
    until_failure_recorded(store, path)
    os.kill(os.getpid(), signal.SIGINT)


def test_a_step_waiting_for_its_retry_when_a_signal_stops_the_run_ends_interrupted(
    tmp_path, calls
):
    store = tmp_path / "retry.run.db"
    flow = flow_on(store, config={"max_concurrent": 0})
    flow.add_step("r", func=calls, kwargs={"fail": True}, retries=2, retry_delay=60)
    flow.add_step("c", func=interrupt_once_seen, args=(str(store), "r"))
    with pytest.raises(KeyboardInterrupt):
        flow.run()
    flow.close()
    assert calls.names() == ["r/1"]
    rows = storehelp.query(
        store, "SELECT status, retry, error FROM events WHERE path = 'r' ORDER BY seq"
    )
    assert [row[:2] for row in rows] == [("ready", 0), ("active", 0), ("failure", 0),
                                         ("interrupted", 0)], rows  # fmt: skip
    assert rows[-1][2] == "its retry was not started: the run was interrupted (SIGINT)"
