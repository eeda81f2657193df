"""The commit policy (executors/commits.py): one commit per step, nothing durable left behind.

A step's start (``ready``, ``active``) may wait in the recorder's buffer when nothing depends on
it, for at most about a second; everything a started step depends on is committed before it
starts. Real runs, real processes, a real SQLite file read from outside the run.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from corerun import wait_for

ROOT = Path(__file__).resolve().parents[2]

FLOW = """
import sqlite3
import sys
import time
from pathlib import Path

import sequent as seq

HERE = Path(__file__).parent
STORE = HERE / "policy.run.db"


def committed(path):
    # the statuses of ``path`` committed so far, read as another process would
    conn = sqlite3.connect(f"file:{STORE}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT status FROM events WHERE path = ?", (path,)).fetchall()
    finally:
        conn.close()
    return [row[0] for row in rows]


def step(name, before):
    with open(HERE / "calls.txt", "a") as calls:
        calls.write(name + "\\n")
    if before is not None and "success" not in committed(before):
        raise RuntimeError(f"{name} started before the success of {before} was committed")
    if name == "long":  # runs until the test opens the gate
        (HERE / "long.started").write_text("")
        deadline = time.monotonic() + 60
        while not (HERE / "gate").exists() and time.monotonic() < deadline:
            time.sleep(0.02)


flow = seq.Sequent(name="policy", store=str(STORE), executor="thread",
                   config={"logdir": str(HERE / "logs")})
previous, before = None, None
for name in ["long", "a", "b", "c", "d"]:
    requires = ((previous, seq.StepStatus.success),) if previous is not None else ()
    previous = flow.add_step(name, func=step, args=(name, before), requires=requires)
    before = name
if __name__ == "__main__":
    mode = seq.RunMode.recover if sys.argv[1:] == ["recover"] else seq.RunMode.restart
    sys.exit(0 if flow.run(run_mode=mode) else 1)
"""


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("SEQUENT_STORE", None)
    return env


@pytest.fixture
def gated(tmp_path: Path) -> Path:
    (tmp_path / "policy.py").write_text(FLOW, encoding="utf-8")
    return tmp_path


def kill_9_once(runner: subprocess.Popen[str], marker: Path, what: str) -> None:
    """SIGKILL ``runner`` once ``marker`` exists (a step started), and reap it."""
    try:
        wait_for(marker.exists, what=what)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "policy.py", *args], cwd=folder, env=environment(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def statuses(folder: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{folder / 'policy.run.db'}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT path, status FROM events ORDER BY attempt, seq").fetchall()
    finally:
        conn.close()


def calls(folder: Path) -> list[str]:
    return (folder / "calls.txt").read_text().split()


@pytest.mark.slow
def test_a_long_step_shows_as_running_elsewhere_and_dependents_see_what_they_need(gated):
    """The first step's start has nothing depending on it, so it may wait in the buffer: it
    still reaches the store while the step runs (``sequent status`` in another process says
    it runs). Each later step checks, from inside the run, that its predecessor's success was
    committed before it started."""
    runner = start(gated)
    try:
        wait_for(lambda: (gated / "long.started").exists(), what="step long to start")

        def shown() -> str:
            done = subprocess.run(
                [sys.executable, "-m", "sequent.cli", "status", "latest", "--store",
                 "policy.run.db"], cwd=gated, env=environment(), capture_output=True,
                text=True, timeout=60, check=False,
            )  # fmt: skip
            return done.stdout if "running now: long/1" in done.stdout else ""

        wait_for(shown, timeout=30, what="sequent status to show step long running")
        (gated / "gate").write_text("")
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 0, err
    assert calls(gated) == ["long", "a", "b", "c", "d"]
    rows = statuses(gated)
    for name in ["long", "a", "b", "c", "d"]:
        assert [s for p, s in rows if p == name] == ["ready", "active", "success"], rows


@pytest.mark.slow
def test_kill_9_while_a_buffered_start_runs_then_recover_runs_each_step_once_more_at_most(
    gated,
):
    """kill -9 while the first step runs (its ``active`` row maybe not committed yet): the
    recover finishes the flow; the killed step runs once more, every other step once."""
    kill_9_once(start(gated), gated / "long.started", "step long to start")
    at_kill = statuses(gated) if (gated / "policy.run.db").exists() else []
    assert all(status in ("ready", "active") for _, status in at_kill), at_kill
    (gated / "gate").write_text("")
    recover = start(gated, "recover")
    out, err = recover.communicate(timeout=120)
    assert recover.returncode == 0, err
    assert calls(gated) == ["long", "long", "a", "b", "c", "d"]
    conn = sqlite3.connect(gated / "policy.run.db")
    try:
        latest = dict(conn.execute("SELECT path, status FROM latest_nodes").fetchall())
    finally:
        conn.close()
    assert latest == dict.fromkeys(["long", "a", "b", "c", "d"], "success")


SERIAL_FLOW = """
import sqlite3
import sys
import time
from pathlib import Path

import sequent as seq

HERE = Path(__file__).parent
STORE = HERE / "serial.run.db"


def committed():
    # every step's statuses committed so far, read as another process would
    conn = sqlite3.connect(f"file:{STORE}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT path, status FROM events ORDER BY attempt, seq").fetchall()
    finally:
        conn.close()
    seen = {}
    for path, status in rows:
        seen.setdefault(path, []).append(status)
    return seen


def step(name):
    with open(HERE / "calls.txt", "a") as calls:
        calls.write(f"{name} {committed()!r}\\n")
    if name == "y" and (HERE / "hold").exists():  # runs until the test kills the run
        (HERE / "y.started").write_text("")
        time.sleep(60)


flow = seq.Sequent(name="serial", store=str(STORE), executor="serial",
                   config={"logdir": str(HERE / "logs"), "max_concurrent": int(sys.argv[1])})
for name in ["x", "y", "z"]:
    flow.add_step(name, func=step, args=(name,))
if __name__ == "__main__":
    mode = seq.RunMode.recover if sys.argv[2:] == ["recover"] else seq.RunMode.restart
    sys.exit(0 if flow.run(run_mode=mode) else 1)
"""


def serial_run(folder: Path, *args: str) -> subprocess.Popen[str]:
    (folder / "serial.py").write_text(SERIAL_FLOW, encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "serial.py", *args], cwd=folder, env=environment(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def serial_calls(folder: Path) -> list[tuple[str, dict[str, list[str]]]]:
    """(step, what the store held when it started) for every start of a step body."""
    lines = (folder / "calls.txt").read_text().splitlines()
    return [(name, eval(seen)) for name, seen in (line.split(" ", 1) for line in lines)]


@pytest.mark.parametrize("max_concurrent", [2, 0])
def test_serial_commits_each_start_before_it_runs_and_each_end_before_the_next(
    tmp_path, max_concurrent
):
    """The serial executor runs one step at a time whatever ``max_concurrent`` says: each
    step sees its own ``active`` committed, the previous step's ``success`` committed, and no
    later step recorded ``active`` before it started."""
    runner = serial_run(tmp_path, str(max_concurrent))
    out, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, err
    ready, active, success = ["ready"], ["ready", "active"], ["ready", "active", "success"]
    assert serial_calls(tmp_path) == [
        ("x", {"x": active, "y": ready, "z": ready}),
        ("y", {"x": success, "y": active, "z": ready}),
        ("z", {"x": success, "y": success, "z": active}),
    ]


@pytest.mark.slow
def test_serial_kill_9_during_the_second_step_then_recover_does_not_rerun_the_first(tmp_path):
    """kill -9 while y runs (x finished): x's success is in the store, the recover runs y and
    z and not x."""
    (tmp_path / "hold").write_text("")
    kill_9_once(serial_run(tmp_path, "2"), tmp_path / "y.started", "step y to start")
    conn = sqlite3.connect(f"file:{tmp_path / 'serial.run.db'}?mode=ro", uri=True)
    at_kill = dict(conn.execute("SELECT path, status FROM latest_nodes").fetchall())
    conn.close()
    assert at_kill == {"x": "success", "y": "active", "z": "ready"}, at_kill
    (tmp_path / "hold").unlink()
    recover = serial_run(tmp_path, "2", "recover")
    out, err = recover.communicate(timeout=120)
    assert recover.returncode == 0, err
    assert [name for name, _ in serial_calls(tmp_path)] == ["x", "y", "y", "z"]
