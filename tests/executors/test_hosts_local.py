"""``hosts=`` on the executors that run every step on this machine: ignored, with one warning
per run that names the steps (SPEC 3.2)."""

from __future__ import annotations

import logging

import pytest

import sequent as seq


def noop() -> None:
    return None


@pytest.mark.parametrize("executor", ["serial", "thread", "process", "loky"])
def test_hosts_on_a_local_executor_is_one_warning_per_run_naming_the_steps(
    executor, tmp_path, caplog
):
    flow = seq.Sequent(
        name="hosts",
        store=":memory:",
        executor=executor,
        config={"logdir": str(tmp_path / "logs"), "max_concurrent": 0},
    )
    box = flow.add_step("box", repeats=[1, 2, 3])
    box.add_step("pinned", func=noop, hosts=["db-host"])
    flow.add_step("also", func=noop, hosts=["gpu-host", "other"])
    flow.add_step("free", func=noop)
    try:
        with caplog.at_level(logging.WARNING, logger="sequent"):
            assert flow.run() is True
            assert flow.run() is True
    finally:
        flow.close()
    warned = [r.getMessage() for r in caplog.records if "hosts= is ignored" in r.getMessage()]
    assert len(warned) == 2  # once per run, not once per step instance
    assert f"on the {executor} executor" in warned[0]
    assert "steps with hosts: also, box_pinned." in warned[0]
