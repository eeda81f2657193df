"""One orchestrator per run: the run lease, its heartbeat, and what a second orchestrator meets.

The command-line tests run ``sequent run|recover leaseflow.py`` in child processes against one
store file: two recovers started together, a recover while the run runs, a recover after the
holder was killed with SIGKILL, and leases left by an orchestrator on another host (fresh or
stale). Step bodies leave trace lines, so "ran once" is counted, not assumed.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import sequent as seq
from sequent.errors import LeaseError
from sequent.store import open_store
from sequent.store.lease import HEARTBEAT_EVERY, STALE_AFTER, pid_alive

from .storehelp import finish

FLOW = Path(__file__).with_name("leaseflow.py")


def sequent(*args: str, folder: Path, **env: str) -> subprocess.Popen:
    """Start the ``sequent`` command in a child process, output captured."""
    environment = {**os.environ, "FOLDER": str(folder), **env}
    environment.pop("SEQUENT_STORE", None)
    return subprocess.Popen(
        [sys.executable, "-c", "from sequent.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def wait_for(condition, what: str, timeout: float = 30, children=()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        for child in children:
            if child.poll() is not None:
                out, err = child.communicate()
                raise AssertionError(f"a child ended early ({child.returncode}):\n{out}\n{err}")
        time.sleep(0.01)


def ran(folder: Path) -> Counter:
    """How many times each (step, attempt) body ran, from the trace lines."""
    path = folder / "ran"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter((name, int(attempt)) for name, attempt, _ in (line.split() for line in lines))


def gates(folder: Path) -> list[int]:
    """The pids of the processes whose ``gate`` step has started."""
    return sorted(int(path.name.split(".")[1]) for path in folder.glob("gate.*"))


def run_at_the_gate(folder: Path, store: Path) -> subprocess.Popen:
    """``sequent run`` of the flow in a child process, once its ``gate`` step has started."""
    running = sequent("run", str(FLOW), "--store", str(store), folder=folder)
    wait_for(lambda: gates(folder) == [running.pid], "the run's gate step", children=[running])
    return running


def failed_run(folder: Path, store: Path) -> str:
    """Record a run of the flow whose ``gate`` step failed; return its run id."""
    (folder / "open").touch()
    (folder / "fail").touch()
    status, out, err = finish(sequent("run", str(FLOW), "--store", str(store), folder=folder))
    assert status == 1, err
    (folder / "fail").unlink()
    (folder / "open").unlink()
    for path in folder.glob("gate.*"):
        path.unlink()
    with open_store(str(store)) as reader:
        (run,) = reader.runs()
    assert run["state"] == "failure"
    return run["run_id"]


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_recovers_started_together_one_proceeds_the_other_names_it(folder):
    store = folder / "leased.run.db"
    run_id = failed_run(folder, store)
    go = folder / "go"
    children = [
        sequent("recover", str(FLOW), "--store", str(store), folder=folder, WAIT_FOR=str(go))
        for _ in range(2)
    ]
    wait_for(lambda: len(list(folder.glob("go.*.ready"))) == 2, "both to load", children=children)
    go.touch()
    # The loser refuses at once; the winner holds the run in its gate step meanwhile.
    wait_for(lambda: any(child.poll() is not None for child in children), "one to refuse")
    (loser,) = [child for child in children if child.poll() is not None]
    (winner,) = [child for child in children if child is not loser]
    status, out, err = finish(loser)
    assert status == 2, err
    line = one_line(err)
    assert f"run {run_id}" in line and f"pid {winner.pid}" in line and "--force" in line
    wait_for(lambda: gates(folder) == [winner.pid], "the winner's gate step")
    (folder / "open").touch()
    status, out, err = finish(winner)
    assert status == 0, err
    assert ran(folder) == Counter(
        {("first", 0): 1, ("gate", 0): 1, ("gate", 1): 1, ("last", 1): 1}
    )
    with open_store(str(store)) as reader:
        assert [a["attempt"] for a in reader.attempts(run_id)] == [0, 1]
        assert reader.state(run_id) == "success"
        assert reader.lease(run_id) is None


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_recover_while_the_run_runs_is_refused_and_writes_nothing(folder):
    store = folder / "leased.run.db"
    running = run_at_the_gate(folder, store)
    with open_store(str(store)) as reader:
        (run,) = reader.runs()
        assert run["state"] == "running"
        held = reader.lease(run["run_id"])
        assert held is not None and held["pid"] == running.pid and held["alive"]
        assert held["attempt"] == 0
    before = (
        sqlite3.connect(store).execute("SELECT COUNT(*) FROM attempts").fetchone()[0],
        sqlite3.connect(store).execute("SELECT COUNT(*) FROM events").fetchone()[0],
    )
    status, out, err = finish(sequent("recover", str(FLOW), "--store", str(store), folder=folder))
    assert status == 2, err
    line = one_line(err)
    assert f"pid {running.pid}" in line and "another orchestrator" in line
    conn = sqlite3.connect(store)
    assert conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == before[0]
    conn.close()
    (folder / "open").touch()
    status, out, err = finish(running)
    assert status == 0, err
    assert ran(folder) == Counter({("first", 0): 1, ("gate", 0): 1, ("last", 0): 1})
    with open_store(str(store)) as reader:
        assert reader.state(run["run_id"]) == "success"
        assert reader.lease(run["run_id"]) is None
        (attempt,) = reader.attempts(run["run_id"])
        assert attempt["heartbeat"] is not None


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_after_sigkill_of_the_holder_a_recover_proceeds(folder):
    store = folder / "leased.run.db"
    running = run_at_the_gate(folder, store)
    running.send_signal(signal.SIGKILL)
    finish(running)
    with open_store(str(store)) as reader:
        (run,) = reader.runs()
        held = reader.lease(run["run_id"])
        # On this host the holder's process is seen to be gone at once.
        assert held is not None and not held["alive"] and "has ended" in held["gone"]
        assert run["state"] == "abandoned"
    (folder / "open").touch()
    status, out, err = finish(sequent("recover", str(FLOW), "--store", str(store), folder=folder))
    assert status == 0, err
    assert ran(folder) == Counter(
        {("first", 0): 1, ("gate", 0): 1, ("gate", 1): 1, ("last", 1): 1}
    )
    run_log = (folder / "logs" / "leased" / run["run_id"] / "run.log").read_text()
    assert f"Took over run {run['run_id']} from attempt 0's orchestrator" in run_log


def plant_lease(store: Path, run_id: str, age: float) -> None:
    """Leave the lease an orchestrator on another host would leave, its heartbeat ``age`` old."""
    now = time.time()
    conn = sqlite3.connect(store)
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO leases (run_id, attempt, host, pid, user, started, heartbeat) "
            "VALUES (?, 0, 'elsewhere.example', 4242, 'ann', ?, ?)",
            (run_id, now - 60, now - age),
        )
    conn.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_lease_from_another_host_blocks_until_stale_or_forced(folder):
    store = folder / "leased.run.db"
    run_id = failed_run(folder, store)
    (folder / "open").touch()
    plant_lease(store, run_id, age=1)
    with open_store(str(store)) as reader:
        assert reader.state(run_id) == "failure"  # its latest attempt ended
    status, out, err = finish(sequent("recover", str(FLOW), "--store", str(store), folder=folder))
    assert status == 2, err
    line = one_line(err)
    assert "pid 4242 on host 'elsewhere.example'" in line and "user 'ann'" in line
    assert ran(folder)[("gate", 1)] == 0
    # Stale: the holder stopped beating more than STALE_AFTER seconds ago.
    plant_lease(store, run_id, age=STALE_AFTER + 1)
    status, out, err = finish(sequent("recover", str(FLOW), "--store", str(store), folder=folder))
    assert status == 0, err
    assert ran(folder)[("gate", 1)] == 1
    # Fresh, but forced.
    (folder / "fail").touch()
    plant_lease(store, run_id, age=1)
    status, out, err = finish(
        sequent("recover", str(FLOW), "--store", str(store), "--force", folder=folder)
    )
    assert status == 0, err  # everything succeeded in attempt 1: all skipped
    run_log = (folder / "logs" / "leased" / run_id / "run.log").read_text()
    assert "--force was given" in run_log and "stale after" in run_log
    with open_store(str(store)) as reader:
        assert [a["attempt"] for a in reader.attempts(run_id)] == [0, 1, 2]
        assert reader.lease(run_id) is None


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_heartbeat_advances_while_the_run_runs_and_sigterm_releases_the_lease(folder):
    store = folder / "leased.run.db"
    running = run_at_the_gate(folder, store)
    with open_store(str(store)) as reader:
        (run,) = reader.runs()
        first = reader.lease(run["run_id"])
        assert first is not None

        def beaten() -> bool:
            now = reader.lease(run["run_id"])
            return now is not None and now["heartbeat"] > first["heartbeat"]

        wait_for(beaten, "a heartbeat", timeout=3 * HEARTBEAT_EVERY, children=[running])
    running.send_signal(signal.SIGTERM)
    status, out, err = finish(running)
    assert status in (-signal.SIGTERM, 128 + signal.SIGTERM), err
    with open_store(str(store)) as reader:
        assert reader.lease(run["run_id"]) is None
        assert reader.state(run["run_id"]) == "failure"
        (attempt,) = reader.attempts(run["run_id"])
        assert attempt["heartbeat"] >= first["heartbeat"]


def test_state_while_running_and_after(tmp_path):
    seen = {}
    store_path = str(tmp_path / "states.run.db")

    def look() -> None:
        with open_store(store_path) as reader:
            (run,) = reader.runs()
            seen["state"] = run["state"]
            seen["lease"] = reader.lease(run["run_id"])

    flow = seq.Sequent(
        name="states", store=store_path, executor="thread", config={"logdir": str(tmp_path)}
    )
    flow.add_step("look", func=look)
    with flow:
        assert flow.run() is True
    assert seen["state"] == "running"
    assert seen["lease"]["pid"] == os.getpid() and seen["lease"]["alive"]
    with open_store(store_path) as reader:
        assert reader.state(flow.run_id) == "success"
        assert [run["state"] for run in reader.runs()] == ["success"]


def test_an_in_memory_store_holds_its_run_while_it_runs(tmp_path):
    seen = {}

    def look() -> None:
        seen["state"] = flow._store.state(seq.current().run_id)
        with pytest.raises(LeaseError, match="another orchestrator"):
            flow._store.begin(
                flow.compile(), flow_name="mem", mode=seq.RunMode.recover,
                recovery_run=seq.current().run_id,
            )  # fmt: skip

    flow = seq.Sequent(name="mem", store=":memory:", executor="thread",
                       config={"logdir": str(tmp_path)})  # fmt: skip
    flow.add_step("look", func=look)
    assert flow.run() is True
    assert seen["state"] == "running"
    assert flow._store.state(flow.run_id) == "success"
    flow.close()


def take_over(store: Path, run_id: str) -> None:
    """Do to the lease what a recover on another host does when it takes the run over."""
    now = time.time()
    conn = sqlite3.connect(store)
    with conn:
        conn.execute(
            "UPDATE leases SET attempt = 1, host = 'elsewhere.example', pid = 4242, "
            "started = ?, heartbeat = ? WHERE run_id = ?",
            (now, now, run_id),
        )
    conn.close()


def attempt_events(store: Path, run_id: str, attempt: int) -> dict[str, list[tuple]]:
    """Each step's (status, error) events in ``attempt``, in order."""
    found: dict[str, list[tuple]] = {}
    conn = sqlite3.connect(store)
    for path, status, error in conn.execute(
        "SELECT path, status, error FROM events WHERE run_id = ? AND attempt = ? ORDER BY seq",
        (run_id, attempt),
    ):
        found.setdefault(path, []).append((status, error))
    conn.close()
    return found


def test_a_stale_lease_of_a_live_process_on_this_host_is_stalled_not_gone(tmp_path):
    from sequent.store.lease import HOST, judge

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.send_signal(signal.SIGSTOP)  # a stopped orchestrator: alive, no heartbeat
        now = time.time()
        lease = {"run_id": "r", "attempt": 0, "host": HOST, "pid": child.pid, "user": "ann",
                 "started": now, "heartbeat": now - STALE_AFTER - 5}  # fmt: skip
        judged = judge(dict(lease), "s.run.db", now=now)
        assert judged["alive"] and judged["gone"] is None
        assert f"process {child.pid} on this host is alive" in judged["stalled"]
        # Fresh, it is alive and not stalled; on another host the stale rule still holds.
        assert judge(dict(lease, heartbeat=now), "s.run.db", now=now)["stalled"] is None
        elsewhere = judge(dict(lease, host="elsewhere.example"), "s.run.db", now=now)
        assert not elsewhere["alive"] and "stale after" in elsewhere["gone"]
        # Its pid held by a process born after the lease was taken: the holder has ended.
        reused = judge(dict(lease, started=now - 3600), "s.run.db", now=now)
        assert not reused["alive"] and "now another process" in reused["gone"]
    finally:
        child.kill()
        child.wait()
    ended = judge(dict(lease), "s.run.db", now=now)
    assert not ended["alive"] and "has ended" in ended["gone"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_stalled_holder_on_this_host_shows_running_and_blocks_recover_without_force(folder):
    store = folder / "leased.run.db"
    run_id = failed_run(folder, store)
    (folder / "open").touch()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder.send_signal(signal.SIGSTOP)
        now = time.time()
        conn = sqlite3.connect(store)
        with conn:  # what a stopped orchestrator of a recover leaves: its row, a stale beat
            conn.execute(
                "INSERT INTO leases (run_id, attempt, host, pid, user, started, heartbeat) "
                "VALUES (?, 1, ?, ?, 'ann', ?, ?)",
                (run_id, socket.gethostname(), holder.pid, now, now - STALE_AFTER - 5),
            )
            conn.execute("UPDATE runs SET ended = NULL, result = NULL WHERE run_id = ?",
                         (run_id,))  # fmt: skip
        conn.close()
        with open_store(str(store)) as reader:
            assert reader.state(run_id) == "running"
        status, out, err = finish(
            sequent("status", run_id, "--store", str(store), folder=folder)
        )
        head = out.splitlines()[0]
        assert f"{run_id} of flow 'leased': running, but unresponsive (pid {holder.pid} on " in head
        assert f"heartbeat {STALE_AFTER + 5:.0f} s ago" in head, head
        status, out, err = finish(
            sequent("recover", str(FLOW), "--store", str(store), folder=folder)
        )
        assert status == 2, err
        line = one_line(err)
        assert f"pid {holder.pid}" in line and f"process {holder.pid} is alive" in line
        assert f"kill {holder.pid}" in line and "--force" in line
        assert ran(folder)[("gate", 1)] == 0
        with open_store(str(store)) as reader:
            assert len(reader.attempts(run_id)) == 1
        status, out, err = finish(
            sequent("recover", str(FLOW), "--store", str(store), "--force", folder=folder)
        )
        assert status == 0, err
        assert ran(folder)[("gate", 1)] == 1
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_run_taken_over_stops_its_running_steps_and_launches_nothing(folder):
    store = folder / "leased.run.db"
    running = sequent("run", str(FLOW), "--store", str(store), "--executor", "process",
                      folder=folder)  # fmt: skip
    wait_for(lambda: gates(folder), "the run's gate step", children=[running])
    (worker,) = gates(folder)  # the gate runs in a worker process, waiting for ``open``
    with open_store(str(store)) as reader:
        (run,) = reader.runs()
    take_over(store, run["run_id"])
    # Its heartbeat notices within HEARTBEAT_EVERY: the run ends without opening the gate.
    status, out, err = finish(running)
    assert status == 1, err
    assert not pid_alive(worker)  # its running step was stopped
    assert ran(folder) == Counter({("first", 0): 1, ("gate", 0): 1})  # ``last`` never ran
    events = attempt_events(store, run["run_id"], 0)
    assert [status for status, _ in events["gate"]] == ["ready", "active", "interrupted"]
    error = events["gate"][-1][1]
    assert "another orchestrator took over run" in error
    assert "attempt 1's orchestrator (pid 4242 on 'elsewhere.example')" in error
    assert "active" not in [status for status, _ in events.get("last", [])]
    run_log = (folder / "logs" / "leased" / run["run_id"] / "run.log").read_text()
    assert "This attempt (0) stops: it launches no more steps" in run_log
    assert "keeps recording" not in run_log + err


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_stalled_run_taken_over_launches_nothing_when_it_resumes(folder):
    from sequent.store.lease import FRESH_FOR

    store = folder / "leased.run.db"
    running = run_at_the_gate(folder, store)  # the thread executor: gate runs in the run
    with open_store(str(store)) as reader:
        (run,) = reader.runs()
    running.send_signal(signal.SIGSTOP)
    try:
        take_over(store, run["run_id"])
        (folder / "open").touch()  # the gate ends as soon as the process runs again
        time.sleep(FRESH_FOR + 1)  # stalled longer than its last beat vouches for the lease
    finally:
        running.send_signal(signal.SIGCONT)
    status, out, err = finish(running)
    assert status == 1, err
    assert ran(folder) == Counter({("first", 0): 1, ("gate", 0): 1})  # ``last`` never ran
    events = attempt_events(store, run["run_id"], 0)
    # the gate ends as it resumes: recorded as it ended, or interrupted when the lease's loss
    # was seen first (both are true records); what matters is that nothing more started
    assert events["gate"][-1][0] in ("success", "interrupted")
    assert "active" not in [status for status, _ in events.get("last", [])]
