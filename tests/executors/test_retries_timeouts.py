"""Retries with a doubling back-off and step timeouts (SPEC 3.6), on every executor.

Every attempt is recorded (the recorder's ``retry`` is the attempt number) with its outcome,
whose ``started``/``ended`` show the back-off between attempts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from corerun import new_flow, run_core
from procs import alive, gone_within

import sequent as seq
from sequent.status import StepStatus

S = StepStatus
CAN_STOP = ["thread", "process", "loky", "dask"]  # serial runs the step in the loop's thread


def flaky(folder: str, fails: int) -> int:
    """Fail the first ``fails`` calls (counted as files in ``folder``), then succeed."""
    number = len(os.listdir(folder)) + 1
    Path(folder, str(number)).touch()
    if number <= fails:
        raise RuntimeError(f"attempt {number} fails")
    return seq.current().retry


def always_fails() -> None:
    raise RuntimeError("never works")


def sleep_marked(folder: str, seconds: float) -> int:
    """Sleep; leave ``pid`` on start and ``stopped`` when interrupted or finished."""
    Path(folder, "pid").write_text(str(os.getpid()))
    try:
        time.sleep(seconds)
    finally:
        Path(folder, "stopped").touch()
    return os.getpid()


def test_retries_record_every_attempt_with_doubling_backoff(executor, lend, tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    backend = lend(executor)
    flow = new_flow(backend, tmp_path)
    flow.add_step("flaky", func=flaky, args=(str(folder), 2), retries=3, retry_delay=0.2)
    run = run_core(flow, backend)
    assert run.result is True
    mine = [r for r in run.records if r.key.path == "flaky"]
    assert [(r.status.value, r.retry) for r in mine] == [
        ("ready", 0),
        ("active", 0),
        ("failure", 0),
        ("failure", 1),
        ("success", 2),
    ]
    assert [r.error for r in mine[2:4]] == [
        "RuntimeError: attempt 1 fails",
        "RuntimeError: attempt 2 fails",
    ]
    assert mine[-1].outcome.value == 2  # the step saw its retry number in seq.current()
    first, second, third = (r.outcome for r in mine[2:])
    assert second.started - first.ended >= 0.2
    assert third.started - second.ended >= 0.4  # the delay doubled
    assert sorted(os.listdir(folder)) == ["1", "2", "3"]


def test_retries_exhausted_fail_the_step_after_the_last_attempt(executor, lend, tmp_path):
    backend = lend(executor)
    flow = new_flow(backend, tmp_path)
    doomed = flow.add_step("doomed", func=always_fails, retries=2, retry_delay=0.01)
    flow.add_step("after", func=always_fails, requires=((doomed, S.success),))
    run = run_core(flow, backend)
    assert run.result is False
    failures = [r for r in run.records if r.key.path == "doomed" and r.status is S.failure]
    assert [r.retry for r in failures] == [0, 1, 2]
    assert all(r.error == "RuntimeError: never works" for r in failures)
    assert run.status() == {"doomed/1": "failure", "after/1": "skipped"}


@pytest.mark.parametrize("name", CAN_STOP)
def test_timeout_fails_each_attempt_and_is_recorded(name, lend, tmp_path):
    backend = lend(name)
    flow = new_flow(backend, tmp_path)
    slow = flow.add_step("slow", func=time.sleep, args=(3,), timeout=0.3, retries=1)
    flow.add_step("cleanup", func=os.getpid, requires=((slow, S.failure),))
    started = time.monotonic()
    run = run_core(flow, backend)
    assert time.monotonic() - started < 10
    failures = [r for r in run.records if r.key.path == "slow" and r.status is S.failure]
    assert [(r.retry, r.error) for r in failures] == [
        (0, "TimeoutError: step 'slow' timed out after 0.3 s"),
        (1, "TimeoutError: step 'slow' timed out after 0.3 s"),
    ]
    assert run.status() == {"slow/1": "failure", "cleanup/1": "success"}


def test_process_timeout_retry_runs_in_a_fresh_worker(lend, tmp_path):
    backend = lend("process")
    folder = tmp_path / "marks"
    folder.mkdir()
    flow = new_flow(backend, tmp_path)
    flow.add_step("slow", func=sleep_marked, args=(str(folder), 20), timeout=0.5)
    run = run_core(flow, backend)
    assert run.status() == {"slow/1": "failure"}
    assert gone_within(int((folder / "pid").read_text()), 5), "the worker was not killed"
    assert not (folder / "stopped").exists()  # killed outright, no Python cleanup ran


@pytest.mark.slow  # loky: the quick suite leaves loky to the full run
def test_loky_timeout_interrupts_the_step_and_keeps_the_worker(lend, tmp_path):
    backend = lend("loky")
    folder = tmp_path / "marks"
    folder.mkdir()
    flow = new_flow(backend, tmp_path)
    flow.add_step("slow", func=sleep_marked, args=(str(folder), 20), timeout=0.5)
    run = run_core(flow, backend)
    assert run.status() == {"slow/1": "failure"}
    deadline = time.monotonic() + 5
    while not (folder / "stopped").exists():  # StepKilled ends the sleep; `finally` runs
        assert time.monotonic() < deadline, "the timed-out loky step was not interrupted"
        time.sleep(0.02)
    assert alive(int((folder / "pid").read_text())), "the loky worker should live on"
