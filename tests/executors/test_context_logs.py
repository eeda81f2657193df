"""The step context, logs and sendability across process boundaries (SPEC 1.4, 3.7, 8).

- process-based executors export the ``SEQUENT_*``/``EVENTOR_*`` variables to the step and
  remove them after it;
- records a step logs in a worker, through any logger, reach the run's log and the step's log;
- a func or argument that cannot be sent is a build-time ``NotSendableError`` naming the step;
  a return value that cannot come back fails the step with a clear message.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from corerun import new_flow, run_core

import sequent as seq
from sequent.logs import step_log_path
from sequent.status import StepStatus

S = StepStatus
REMOTE = ["process", "loky", "dask"]
VARIABLES = ("STEP_NAME", "STEP_SEQUENCE", "STEP_RECOVERY", "RUN_ID", "LOGGER_NAME")

user_log = logging.getLogger("tests.user.module")


def environment() -> dict[str, str | None]:
    names = [f"{prefix}_{name}" for prefix in ("SEQUENT", "EVENTOR") for name in VARIABLES]
    return {name: os.environ.get(name) for name in names}


def chatty(word: str) -> str:
    user_log.info("user says %s", word)
    logging.getLogger(seq.current().logger_name).warning("step logger says %s", word)
    logging.getLogger().debug("root debug %s", word)
    return word


def returns_a_lock() -> threading.Lock:
    return threading.Lock()


def noop(*args, **kwargs) -> None:
    return None


def mark(path: str) -> None:
    Path(path).touch()


@pytest.mark.parametrize("name", REMOTE)
def test_worker_processes_see_the_step_context_variables(name, lend, tmp_path):
    backend = lend(name)
    flow = new_flow(backend, tmp_path)
    box = flow.add_step("box", repeats=[7, 8])
    box.add_step("env", func=environment)
    run = run_core(flow, backend)
    assert run.result is True
    for sequence in ("1.1", "1.2"):
        seen = run.value(f"box_env/{sequence}")
        for prefix in ("SEQUENT", "EVENTOR"):
            assert seen[f"{prefix}_STEP_NAME"] == "box_env"
            assert seen[f"{prefix}_STEP_SEQUENCE"] == sequence
            assert seen[f"{prefix}_STEP_RECOVERY"] == "0"
            assert seen[f"{prefix}_RUN_ID"] == "behaviour-run"
            assert seen[f"{prefix}_LOGGER_NAME"] == "sequent.step"


def test_step_logs_reach_run_log_and_step_log(executor, make_flow, tmp_path):
    flow = make_flow(executor, name="chat", logging_level=logging.INFO)
    box = flow.add_step("box", repeats=["x", "y"])
    box.add_step("talk", func=chatty, args=("hello",))
    assert flow.run() is True
    folder = tmp_path / "logs" / "chat" / flow.run_id
    run_log = (folder / "run.log").read_text()
    assert run_log.count("][ INFO ][ user says hello ]") == 2
    assert run_log.count("][ WARNING ][ step logger says hello ]") == 2
    assert "root debug" not in run_log  # below the flow's logging level
    for sequence in ("1.1", "1.2"):
        step_log = step_log_path(folder, "box_talk", sequence).read_text()
        assert step_log.count("user says hello") == 1  # once: not also written by the worker
        assert step_log.count("step logger says hello") == 1
    assert run_log.rstrip().endswith("[ Processing finished with: success ]")


@pytest.mark.parametrize("name", REMOTE)
def test_unsendable_argument_is_a_build_error_naming_the_step(name, make_flow, tmp_path):
    marker = tmp_path / "ran"
    flow = make_flow(name)
    flow.add_step("first", func=mark, args=(str(marker),))
    flow.add_step("locked", func=noop, kwargs={"guard": threading.Lock()})
    with pytest.raises(seq.NotSendableError) as error:
        flow.run()
    assert isinstance(error.value, TypeError)
    message = str(error.value)
    assert message.startswith(
        f"step 'locked': its keyword argument 'guard' cannot be sent to a {name} worker"
    )
    assert "executor='thread'" in message
    assert not marker.exists(), "a step ran before the build error"
    assert not (tmp_path / "logs").exists(), "the run started before the build error"


def test_unsendable_func_is_a_build_error_naming_the_step(make_flow):
    lock = threading.Lock()

    def closes_over_a_lock() -> None:
        with lock:
            pass

    flow = make_flow("process")
    flow.add_step("closure", func=closes_over_a_lock)
    with pytest.raises(seq.NotSendableError, match=r"^step 'closure': its func cannot be sent"):
        flow.run()
    thread_flow = make_flow("thread")
    thread_flow.add_step("closure", func=closes_over_a_lock)
    assert thread_flow.run() is True


@pytest.mark.parametrize("name", REMOTE)
def test_unsendable_return_value_fails_the_step(name, lend, tmp_path):
    backend = lend(name)
    flow = new_flow(backend, tmp_path)
    bad = flow.add_step("bad", func=returns_a_lock)
    flow.add_step("handled", func=noop, requires=((bad, S.failure),))
    run = run_core(flow, backend)
    assert run.status() == {"bad/1": "failure", "handled/1": "success"}
    error = run.record("bad/1", S.failure).error
    assert "the step returned a lock that cannot be sent back from the worker process" in error
    assert "return plain data instead" in error


def test_lambdas_and_closures_run_on_process_workers(lend, tmp_path):
    backend = lend("process")
    flow = new_flow(backend, tmp_path)
    offset = 40
    flow.add_step("lambda", func=lambda: offset + 2)
    run = run_core(flow, backend)
    assert run.value("lambda/1") == 42
