"""SPEC 3.8: SIGTERM/SIGINT stop the run, record running steps ``interrupted``, end it False;
a recover finishes the work.

After recording, the signal goes to the handler that was there before the run: by default
SIGTERM ends the process (a running thread step is abandoned with it) and SIGINT raises
KeyboardInterrupt (the process then exits without waiting for an abandoned thread step); an
application's own handler is called instead and ``run()`` returns False.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from sequent.store import open_store

from .storehelp import finish, query, ran_count, start


def _wait_for(path, process, seconds: float = 30) -> None:
    """Wait until the step has written ``path`` (its pid in it: not just created)."""
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.read_text().strip()):
        assert process.poll() is None, f"child ended early: {finish(process)}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def _nodes(store) -> tuple[dict, dict]:
    reader = open_store(str(store))
    try:
        (run,) = reader.runs()
        latest = {row["path"]: row for row in reader.nodes(run["run_id"])}
        return run, latest
    finally:
        reader.close()


def _gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def _recover_finishes(store, folder) -> None:
    """A recover of the interrupted run replays ``quick`` and runs ``slow`` and ``after``."""
    status, out, err = finish(start("interrupt", "recover", store, folder, SLOW="0"))
    assert status == 0, err
    run, nodes = _nodes(store)
    assert run["result"] is True
    assert {path: row["status"] for path, row in nodes.items()} == {
        "quick": "success",
        "slow": "success",
        "after": "success",
    }
    assert nodes["quick"]["replayed"] is True
    assert (nodes["slow"]["attempt"], nodes["slow"]["replayed"]) == (1, False)
    assert ran_count(folder) == {("quick", "1"): 1, ("slow", "1"): 2, ("after", "1"): 1}


@pytest.mark.parametrize("executor", ["serial", "thread", "process"])
@pytest.mark.slow
def test_sigterm_records_interrupted_and_recover_finishes(folder, executor):
    store = folder / "interrupt.run.db"
    process = start("interrupt", "restart", store, folder, EXECUTOR=executor)
    _wait_for(folder / "slow.started", process)
    step_pid = int((folder / "slow.started").read_text())
    process.send_signal(signal.SIGTERM)
    status, out, err = finish(process, timeout=30)

    # The default SIGTERM action ended the process once the run was recorded.
    assert status == -signal.SIGTERM, err
    assert "result=" not in out
    run, nodes = _nodes(store)
    assert run["result"] is False
    assert nodes["quick"]["status"] == "success"
    assert nodes["slow"]["status"] == "interrupted"
    assert nodes["slow"]["error"] == "interrupted by SIGTERM"
    assert nodes["after"]["status"] == "skipped"  # its requirement can no longer hold
    assert not (folder / "slow.started.done").exists()
    if executor == "process":
        assert _gone(step_pid), "the step's worker process was not stopped"
    (log,) = (folder / "logs" / "interrupt").glob("*/run.log")
    text = log.read_text()
    assert "Interrupted (SIGTERM): stopping running steps" in text
    assert text.rstrip().endswith("Processing finished with: failure ]")

    _recover_finishes(store, folder)


@pytest.mark.parametrize("executor", ["serial", "thread", "process", "loky"])
@pytest.mark.slow
def test_sigint_ends_the_run_at_once_like_sigterm_and_recover_finishes(folder, executor):
    """SIGINT while a step runs: the run is recorded and ends at once (KeyboardInterrupt from
    ``run()``), without waiting for the step; a thread step cannot be stopped but no longer
    keeps the process alive; a serial step is interrupted where it runs (the signal raises
    inside it)."""
    store = folder / "interrupt.run.db"
    process = start("interrupt", "restart", store, folder, EXECUTOR=executor, SLOW="600")
    _wait_for(folder / "slow.started", process)
    process.send_signal(signal.SIGINT)
    # The step would sleep 600 s: a process that ends within the bound did not wait for it
    # (the bound only stops a hang; a loaded machine takes seconds to stop a worker pool).
    status, out, err = finish(process, timeout=120)
    assert status != 0
    assert "KeyboardInterrupt" in err
    assert "result=" not in out
    run, nodes = _nodes(store)
    assert run["result"] is False
    assert nodes["slow"]["status"] == "interrupted"
    assert nodes["slow"]["error"] == "interrupted by SIGINT"
    assert not (folder / "slow.started.done").exists()  # the step did not run to its end
    assert query(store, "SELECT status FROM events WHERE path = 'slow' ORDER BY attempt, seq") == [
        ("ready",),
        ("active",),
        ("interrupted",),
    ]
    (log,) = (folder / "logs" / "interrupt").glob("*/run.log")
    assert log.read_text().rstrip().endswith("Processing finished with: failure ]")

    _recover_finishes(store, folder)


@pytest.mark.slow
def test_an_application_handler_gets_the_signal_and_run_returns_false(folder):
    store = folder / "interrupt.run.db"
    process = start("interrupt", "restart", store, folder, SLOW="1", CUSTOM_SIGTERM="1")
    _wait_for(folder / "slow.started", process)
    process.send_signal(signal.SIGTERM)
    status, out, err = finish(process, timeout=30)
    assert status == 1, err
    assert "result=False" in out
    run, nodes = _nodes(store)
    assert run["result"] is False
    assert nodes["slow"]["status"] == "interrupted"
