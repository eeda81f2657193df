"""The flow of the lease tests, run with ``sequent run|recover leaseflow.py --store STORE``.

``first -> gate -> last``. Every step appends ``name attempt pid`` to ``$FOLDER/ran`` with one
``os.write`` on an ``O_APPEND`` descriptor. ``gate`` writes ``$FOLDER/gate.<pid>`` when it
starts, then waits (at most 60 s) for the file ``$FOLDER/open`` and fails while the file
``$FOLDER/fail`` exists. With ``$WAIT_FOR`` set, loading the file says it is ready
(``$WAIT_FOR.<pid>.ready``) and waits for the file ``$WAIT_FOR``, so two commands start together.
"""

from __future__ import annotations

import os
import time

import sequent as seq

FOLDER = os.environ["FOLDER"]


def note() -> None:
    context = seq.current()
    assert context is not None
    line = f"{context.name} {context.recovery} {os.getpid()}\n"
    fd = os.open(os.path.join(FOLDER, "ran"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def gate() -> None:
    note()
    open(os.path.join(FOLDER, f"gate.{os.getpid()}"), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(FOLDER, "open")):
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.01)
    if os.path.exists(os.path.join(FOLDER, "fail")):
        raise RuntimeError("told to fail")


flow = seq.Sequent(
    name="leased",
    executor="thread",
    config={"logdir": os.path.join(FOLDER, "logs")},
)
first = flow.add_step("first", func=note)
middle = flow.add_step("gate", func=gate, requires=((first, seq.STEP_SUCCESS),))
flow.add_step("last", func=note, requires=((middle, seq.STEP_SUCCESS),))

_go = os.environ.get("WAIT_FOR")
if _go:
    open(f"{_go}.{os.getpid()}.ready", "w").close()
    _deadline = time.monotonic() + 30
    while not os.path.exists(_go) and time.monotonic() < _deadline:
        time.sleep(0.002)
