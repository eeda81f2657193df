"""An exception or value that cannot even describe itself is a clear failure of its step.

An exception whose ``__str__`` or ``__repr__`` raises, a value whose pickling raises such an
exception: on every local executor the step fails with an error naming the exception's type,
and the worker (process, loky) lives on to take the next step.
"""

from __future__ import annotations

import os

import pytest
from corerun import new_flow, run_core
from procs import alive

from sequent.status import StepStatus

S = StepStatus


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ itself fails")


class BadRepr(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ itself fails")

    def __str__(self) -> str:
        raise RuntimeError("__str__ itself fails")


class Unsendable:
    """A value whose pickling raises an exception that cannot be printed either."""

    def __reduce__(self):  # type: ignore[override]
        raise BadStr()


def raise_bad_str() -> None:
    raise BadStr()


def raise_bad_repr() -> None:
    raise BadRepr()


def return_unsendable() -> Unsendable:
    return Unsendable()


def pid() -> int:
    return os.getpid()


CASES = {
    "str": (raise_bad_str, "BadStr"),
    "repr": (raise_bad_repr, "BadRepr"),
    "pickle": (return_unsendable, "BadStr"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", ["serial", "thread", "process", "loky"])
@pytest.mark.slow_on("loky")  # a worker that cannot send its exception is replaced
def test_an_exception_that_cannot_describe_itself_is_a_clear_failure(name, case, lend, tmp_path):
    func, type_name = CASES[case]
    if case == "pickle" and name in ("serial", "thread"):
        pytest.skip("values are not pickled by in-process executors")
    backend = lend(name)
    flow = new_flow(backend, tmp_path)
    bad = flow.add_step("bad", func=func)
    flow.add_step("next", func=pid, requires=((bad, S.failure),))
    run = run_core(flow, backend, max_concurrent=1)
    assert run.status() == {"bad/1": "failure", "next/1": "success"}
    error = run.record("bad/1", S.failure).error
    assert type_name in error, error
    assert "WorkerDied" not in error and "exit code" not in error, error
    if name in ("process", "loky"):
        assert alive(run.outcome("bad/1").pid), "the step's worker died"
