"""SPEC 3.6 (and 3.2's "timeout counts from the moment the step starts on a worker"): a step's
timeout is the time its body may run, not the time it waits for a free worker."""

from __future__ import annotations

import time
from pathlib import Path

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
