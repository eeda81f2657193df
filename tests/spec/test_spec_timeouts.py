"""SPEC 3.6 (and 3.2's "timeout counts from the moment the step starts on a worker"): a step's
timeout is the time its body may run, not the time it waits for a free worker."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from spec_steps import mark, starts

import sequent as seq


@pytest.mark.slow
@pytest.mark.parametrize("name", ["process", "loky"])
def test_timeout_does_not_count_the_wait_for_a_worker(tmp_path, name):
    from sequent.executors.loky import LokyExecutor
    from sequent.executors.process import ProcessExecutor

    backend = {"process": ProcessExecutor, "loky": LokyExecutor}[name](max_workers=1)
    trace = str(tmp_path / "trace")
    try:
        with seq.Sequent(
            name="wait", store=":memory:", executor=backend, config={"max_concurrent": 0}
        ) as flow:
            flow.add_step("a", func=mark, args=(trace, "a", 1.5))
            flow.add_step("b", func=mark, args=(trace, "b", 0.1), timeout=1.0)
            started = time.monotonic()
            ok = flow.run()
    finally:
        backend.shutdown()
    assert time.monotonic() - started < 60
    assert ok is True
    assert starts(Path(trace)) == ["a", "b"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "start_method"), [("process", "forkserver"), ("process", "spawn"), ("loky", None)]
)
def test_timeout_does_not_count_a_cold_pool(tmp_path, monkeypatch, name, start_method):
    """A lone 0.2 s step with timeout=1 on a pool whose fresh workers take 1.5 s to import the
    step's module succeeds: the timeout counts from the start of its body."""
    from sequent.executors.loky import LokyExecutor
    from sequent.executors.process import ProcessExecutor

    monkeypatch.setenv("SPEC_COLD_PARENT", str(os.getpid()))
    monkeypatch.setenv("SPEC_COLD_SECONDS", "1.5")
    from spec_cold import mark as cold_mark

    if name == "process":
        backend: Any = ProcessExecutor(max_workers=1, start_method=start_method)
    else:
        backend = LokyExecutor(max_workers=1)
    trace = str(tmp_path / "trace")
    try:
        with seq.Sequent(name="cold", store=":memory:", executor=backend) as flow:
            flow.add_step("lone", func=cold_mark, args=(trace, "lone", 0.2), timeout=1.0)
            ok = flow.run()
    finally:
        backend.shutdown()
    assert ok is True
    assert starts(Path(trace)) == ["lone"]
