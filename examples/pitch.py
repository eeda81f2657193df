"""The flow of the project's pitch: A1 and A2 extract, B processes, C1 and C2 transmit.

    python examples/pitch.py              # everything succeeds (exit status 0)
    python examples/pitch.py --fail-c2    # C2 fails (exit status 1)
    python examples/pitch.py --recover    # recovers the latest run: only C2 runs again

The store is ``examples/pitch.run.db`` (next to this script). With the ``sequent`` command,
``sequent run examples/pitch.py -p fail_c2=true`` fails C2 the same way (``-p`` passes
``fail_c2`` to ``build_flow``; ``PITCH_FAIL=C2,B`` fails any steps it names) and
``sequent recover examples/pitch.py`` recovers it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence

import sequent as seq

logger = logging.getLogger(__name__)


def work(name: str, seconds: float = 0.1, fail: bool = False) -> str:
    """Stand in for a batch program: log, take a little time, fail when asked to."""
    context = seq.current()
    assert context is not None, "work() runs as a step of a flow"
    logger.info("%s starts (sequence %s, recovery %d)", name, context.sequence, context.recovery)
    time.sleep(seconds)
    if fail:
        raise RuntimeError(f"{name} could not reach the remote client")
    logger.info("%s done", name)
    return name


def build_flow(fail_c2: bool = False, recover: bool = False) -> seq.Sequent:
    """The pitch flow; C2 fails when ``fail_c2`` is true or ``PITCH_FAIL`` names it."""
    failing = {name.strip() for name in os.environ.get("PITCH_FAIL", "").split(",") if name}
    if fail_c2:
        failing.add("C2")
    flow = seq.Sequent(
        name="pitch",
        run_mode=seq.RunMode.recover if recover else seq.RunMode.restart,
        config={"max_concurrent": 2},
    )

    def step(name: str, requires: Sequence[tuple[seq.Step, seq.StepStatus]] = ()) -> seq.Step:
        kwargs = {"name": name, "fail": name in failing}
        return flow.add_step(name, func=work, kwargs=kwargs, requires=requires)

    a1 = step("A1")
    a2 = step("A2")
    b = step("B", requires=((a1, seq.StepStatus.success), (a2, seq.StepStatus.success)))
    step("C1", requires=((b, seq.StepStatus.success),))
    step("C2", requires=((b, seq.StepStatus.success),))
    return flow


#: The name earlier versions of this example used (``sequent run examples/pitch.py:build``).
build = build_flow


if __name__ == "__main__":
    with build_flow(fail_c2="--fail-c2" in sys.argv, recover="--recover" in sys.argv) as flow:
        ok = flow.run()
    sys.exit(0 if ok else 1)
