"""A worker process that dies or is killed fails its step, and the flow goes on by its rules.

Death modes: ``os._exit``, SIGKILL, a segfault; on the process and the loky executors. The
process executor fails only the step whose worker died and replaces the worker; loky breaks its
whole pool: the steps that were only running beside the dead worker are recorded as a stopped
try and rerun, not counted against ``retries``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corerun import new_flow, run_core
from procs import alive, gone_within

from sequent.executors.process import ProcessExecutor
from sequent.status import StepStatus

S = StepStatus

# -- steps ---------------------------------------------------------------------------------


def die(mode: str) -> None:
    if mode == "exit":
        os._exit(3)
    elif mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "segfault":
        ctypes.string_at(0)
    time.sleep(5)  # a signal is delivered asynchronously


def pid() -> int:
    return os.getpid()


def arrive(folder: str, name: str, others: list[str]) -> None:
    """Mark ``name`` arrived in ``folder``; wait (at most 15 s) until ``others`` arrived."""
    Path(folder, name).touch()
    deadline = time.monotonic() + 15
    while not all(Path(folder, other).exists() for other in others):
        assert time.monotonic() < deadline, f"{others} never arrived"
        time.sleep(0.005)


def die_with_company(folder: str, mode: str) -> None:
    Path(folder, "doomed.pid").write_text(str(os.getpid()))
    arrive(folder, "doomed", ["bystander"])
    die(mode)


def keep_company(folder: str, seconds: float) -> int:
    with open(Path(folder, "bystander.starts"), "a") as starts:  # one line per body start
        starts.write(f"{os.getpid()}\n")
    arrive(folder, "bystander", ["doomed"])
    time.sleep(seconds)
    return os.getpid()


def sleep_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def hang_with_child(folder: str) -> None:
    """Record this worker's pid and a child's (same process group), then hang."""
    child = subprocess.Popen(["sleep", "60"])
    Path(folder, "pids").write_text(f"{os.getpid()} {child.pid}")
    time.sleep(60)


EXPECTED = {
    ("process", "exit"): "exit code 3",
    ("process", "sigkill"): "killed by signal SIGKILL (9)",
    ("process", "segfault"): "killed by signal SIGSEGV (11)",
    ("loky", "exit"): "EXIT(3)",
    ("loky", "sigkill"): "SIGKILL(-9)",
    ("loky", "segfault"): "SIGSEGV(-11)",
}


@pytest.mark.parametrize("mode", ["exit", "sigkill", "segfault"])
@pytest.mark.parametrize("name", ["process", "loky"])
@pytest.mark.slow_on("loky")  # loky takes seconds to replace a dead worker
def test_dying_worker_fails_its_step_and_the_flow_goes_on(name, mode, lend, tmp_path):
    backend = lend(name)
    flow = new_flow(backend, tmp_path)
    doomed = flow.add_step("doomed", func=die, args=(mode,))
    flow.add_step("handler", func=pid, requires=((doomed, S.failure),))
    flow.add_step("later", func=pid, requires=((doomed, S.complete),))
    run = run_core(flow, backend, max_concurrent=1)
    assert run.status() == {"doomed/1": "failure", "handler/1": "success", "later/1": "success"}
    assert run.result is True  # the failure is handled by `handler`
    error = run.record("doomed/1", S.failure).error
    assert error.startswith("WorkerDied: "), error
    assert EXPECTED[name, mode] in error, error
    # the pool replaced the dead worker: the next steps ran, in a live process
    assert alive(run.value("handler/1"))


@pytest.mark.parametrize("mode", ["exit", "sigkill", "segfault"])
def test_process_death_fails_only_the_dying_step(mode, tmp_path):
    folder = tmp_path / "meet"
    folder.mkdir()
    backend = ProcessExecutor(max_workers=2)
    try:
        flow = new_flow(backend, tmp_path)
        flow.add_step("doomed", func=die_with_company, args=(str(folder), mode))
        flow.add_step("bystander", func=keep_company, args=(str(folder), 0.3))
        run = run_core(flow, backend, max_concurrent=0)
        assert run.status() == {"doomed/1": "failure", "bystander/1": "success"}
        assert "WorkerDied: step 'doomed' (sequence 1) failed: the worker process" in (
            run.record("doomed/1", S.failure).error
        )
        # the bystander's worker is still in the pool and takes the next step
        survivor = run.value("bystander/1")
        again = new_flow(backend, tmp_path)
        again.add_step("next", func=pid)
        assert run_core(again, backend, max_concurrent=1).value("next/1") == survivor
    finally:
        backend.shutdown()


@pytest.mark.parametrize("mode", ["exit", "sigkill", "segfault"])
@pytest.mark.slow
def test_loky_death_fails_only_the_dying_step_and_resubmits_bystanders(mode, tmp_path, caplog):
    """loky breaks its whole pool when one worker dies; the step running beside it in another
    worker was stopped: that start is recorded as a failed try naming the dead worker, and the
    step is rerun (not counted against ``retries``); the independent branch after it runs on."""
    folder = tmp_path / "meet"
    folder.mkdir()
    from sequent.executors.loky import LokyExecutor

    backend = LokyExecutor(max_workers=2)
    try:
        flow = new_flow(backend, tmp_path, stop_on_exception=False)
        doomed = flow.add_step("doomed", func=die_with_company, args=(str(folder), mode))
        bystander = flow.add_step("bystander", func=keep_company, args=(str(folder), 0.5))
        flow.add_step("after", func=pid, requires=((bystander, S.success),))
        flow.add_step("handler", func=pid, requires=((doomed, S.failure),))
        with caplog.at_level("WARNING", logger="sequent"):
            run = run_core(flow, backend, max_concurrent=0)
        assert run.status() == {
            "doomed/1": "failure",
            "bystander/1": "success",
            "after/1": "success",
            "handler/1": "success",
        }
        error = run.record("doomed/1", S.failure).error
        assert error.startswith("WorkerDied: the loky worker process running step 'doomed'")
        assert EXPECTED["loky", mode] in error, error
        # every start of the bystander's body is in the record: the stopped one as a failure
        starts = Path(folder, "bystander.starts").read_text().split()
        assert len(starts) == 2
        assert [e for e in run.events() if e.startswith("bystander/1:")] == [
            "bystander/1:ready",
            "bystander/1:active",
            "bystander/1:failure",
            "bystander/1:success",
        ]
        stopped = run.record("bystander/1", S.failure)
        doomed_pid = Path(folder, "doomed.pid").read_text()
        assert stopped.error.startswith(
            f"WorkerStopped: loky stopped step 'bystander' (sequence 1) in its worker pid "
            f"{starts[0]} because worker pid {doomed_pid} of the pool died ("
        ), stopped.error
        assert stopped.error.endswith("; the step is rerun, not counted against retries")
        assert stopped.retry == 0 and stopped.outcome.pid == int(starts[0])
        assert run.record("bystander/1", S.success).retry == 0  # not counted as a retry
        assert run.record("bystander/1", S.success).outcome.value == int(starts[1])
        notes = [r.getMessage() for r in caplog.records if "rerun, not" in r.getMessage()]
        assert len(notes) == 1 and notes[0].startswith("[ Step bystander/1 ] WorkerStopped")
    finally:
        backend.shutdown()


def test_process_pool_is_warm_one_worker_runs_consecutive_steps(tmp_path):
    backend = ProcessExecutor(max_workers=1)
    try:
        flow = new_flow(backend, tmp_path)
        first = flow.add_step("first", func=pid)
        flow.add_step("second", func=pid, requires=((first, S.success),))
        run = run_core(flow, backend, max_concurrent=1)
        assert run.value("first/1") == run.value("second/1") != os.getpid()
    finally:
        backend.shutdown()
    assert not alive(run.value("first/1"))


def test_process_timeout_kills_the_worker_group_and_only_that(tmp_path):
    folder = tmp_path / "hang"
    folder.mkdir()
    backend = ProcessExecutor(max_workers=2)
    try:
        flow = new_flow(backend, tmp_path)
        flow.add_step("hang", func=hang_with_child, args=(str(folder),), timeout=0.5)
        flow.add_step("other", func=sleep_pid, args=(1.0,))
        started = time.time()
        run = run_core(flow, backend, max_concurrent=0)
        failure = run.record("hang/1", S.failure)
        assert failure.error == "TimeoutError: step 'hang' timed out after 0.5 s"
        assert failure.time - started < 5
        assert run.status()["other/1"] == "success"
        worker, child = map(int, (folder / "pids").read_text().split())
        assert gone_within(worker, 5), "the timed-out step's worker still runs"
        assert gone_within(child, 5), "the timed-out step's child process still runs"
        assert alive(run.value("other/1")), "the other step's worker was killed too"
    finally:
        backend.shutdown()


def test_process_pool_shutdown_leaves_no_worker(tmp_path):
    backend = ProcessExecutor(max_workers=3)
    flow = new_flow(backend, tmp_path)
    for name in ("a", "b", "c"):
        flow.add_step(name, func=pid)
    run = run_core(flow, backend, max_concurrent=0)
    backend.shutdown()
    for name in ("a", "b", "c"):
        assert not alive(run.value(f"{name}/1"))


@pytest.mark.slow  # spawned workers import everything afresh
def test_process_spawn_start_method_runs_steps(tmp_path):
    backend = ProcessExecutor(max_workers=1, start_method="spawn")
    try:
        flow = new_flow(backend, tmp_path)
        doomed = flow.add_step("doomed", func=die, args=("exit",))
        flow.add_step("after", func=pid, requires=((doomed, S.failure),))
        run = run_core(flow, backend, max_concurrent=1)
        assert run.status() == {"doomed/1": "failure", "after/1": "success"}
        assert "exit code 3" in run.record("doomed/1", S.failure).error
    finally:
        backend.shutdown()


ORPHANED = """
import os, sys
from pathlib import Path
import sequent as seq

def hang(pidfile):
    Path(pidfile + ".worker").write_text(str(os.getpid()))
    seq.Program(["sh", "-c", 'sleep 60 & echo $! > "$0"; wait'])(pidfile)

flow = seq.Sequent(name="orphan", store=":memory:", config={"logdir": sys.argv[2]})
flow.add_step("hang", func=hang, args=(sys.argv[1],))
flow.run()
"""


@pytest.mark.slow  # an orchestrator in a subprocess
def test_killing_the_orchestrator_stops_its_workers_and_their_programs(tmp_path):
    """kill -9 of the orchestrator mid-step: the worker and its program do not run on."""
    script = tmp_path / "orphan.py"
    script.write_text(ORPHANED)
    pidfile = tmp_path / "child.pid"
    orchestrator = subprocess.Popen(
        [sys.executable, str(script), str(pidfile), str(tmp_path / "logs")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert time.monotonic() < deadline, "the step never started its program"
            time.sleep(0.02)
        orchestrator.kill()
        orchestrator.wait(10)
    finally:
        orchestrator.kill()
    worker = int(Path(f"{pidfile}.worker").read_text())
    assert gone_within(worker, 5), "the worker outlived the orchestrator"
    assert gone_within(int(pidfile.read_text()), 5), "the program outlived the orchestrator"


def outlive(folder: str, stopped: bool) -> int:
    """Note this start, then wait until the doomed step's worker has died; with ``stopped``
    its first start waits to be stopped (loky kills it with its pool)."""
    with open(Path(folder, "outlive.starts"), "a") as starts:
        starts.write(f"{os.getpid()}\n")
    first = len(Path(folder, "outlive.starts").read_text().split()) == 1
    deadline = time.monotonic() + 30
    while (stopped and first) or not Path(folder, "doomed.pid").exists() or alive(
        int(Path(folder, "doomed.pid").read_text() or 0)
    ):
        assert time.monotonic() < deadline, "this start was never stopped (or never released)"
        time.sleep(0.005)
    return os.getpid()


def die_after_company(folder: str) -> None:
    arrive(folder, "doomed", ["outlive.starts"])
    Path(folder, "doomed.pid").write_text(str(os.getpid()))
    os._exit(3)


@pytest.mark.parametrize("name", ["process", "loky"])
@pytest.mark.slow_on("loky")
def test_the_store_holds_every_start_of_a_neighbour_of_a_dying_worker(name, tmp_path):
    """The process executor runs the neighbour once; loky stops it with the pool and runs it
    again: the store's events then hold both starts, the stopped one a failed try at retry 0."""
    import sequent as seq
    from sequent.store import open_store

    folder = tmp_path / "meet"
    folder.mkdir()
    store = tmp_path / "deaths.run.db"
    flow = seq.Sequent(name="deaths", store=str(store), executor=name,
                       config={"max_concurrent": 2, "stop_on_exception": False,
                               "logdir": str(tmp_path / "logs")})  # fmt: skip
    flow.add_step("doomed", func=die_after_company, args=(str(folder),))
    flow.add_step("neighbour", func=outlive, args=(str(folder), name == "loky"))
    with flow:
        assert flow.run() is False
    starts = [int(pid) for pid in Path(folder, "outlive.starts").read_text().split()]
    with open_store(str(store)) as reader:
        events = [e for e in reader.events(flow.run_id) if e["path"] == "neighbour"]
    ended = [(e["status"], e["retry"], e["pid"]) for e in events if e["status"] != "ready"]
    if name == "process":  # its worker was not touched: one start, one success
        assert ended == [("active", 0, None), ("success", 0, starts[0])]
        assert len(starts) == 1
        return
    assert len(starts) == 2
    assert ended == [("active", 0, None), ("failure", 0, starts[0]), ("success", 0, starts[1])]
    doomed = Path(folder, "doomed.pid").read_text()
    error = events[2]["error"]
    assert f"in its worker pid {starts[0]} because worker pid {doomed} of the pool died" in error
    assert error.endswith("; the step is rerun, not counted against retries")
