"""The flow of the project's pitch: A1 and A2 extract, B processes, C1 and C2 transmit.

Run it twice to see recovery: ``python examples/pitch.py --fail-c2`` fails C2, then
``python examples/pitch.py --recover`` reruns only C2.
"""

import logging
import sys
import time

import sequent as seq

logger = logging.getLogger(__name__)


def work(name, seconds=0.1, fail=False):
    logger.info("%s starts", name)
    time.sleep(seconds)
    if fail:
        raise RuntimeError(f"{name} could not reach the remote client")
    logger.info("%s done", name)
    return name


def build(fail_c2=False, recover=False):
    flow = seq.Sequent(
        name="pitch",
        run_mode=seq.RunMode.recover if recover else seq.RunMode.restart,
        config={"max_concurrent": 2},
    )
    a1 = flow.add_step("A1", func=work, kwargs={"name": "A1"})
    a2 = flow.add_step("A2", func=work, kwargs={"name": "A2"})
    b = flow.add_step(
        "B",
        func=work,
        kwargs={"name": "B"},
        requires=((a1, seq.StepStatus.success), (a2, seq.StepStatus.success)),
    )
    flow.add_step("C1", func=work, kwargs={"name": "C1"}, requires=((b, seq.StepStatus.success),))
    flow.add_step(
        "C2",
        func=work,
        kwargs={"name": "C2", "fail": fail_c2},
        requires=((b, seq.StepStatus.success),),
    )
    return flow


if __name__ == "__main__":
    with build(fail_c2="--fail-c2" in sys.argv, recover="--recover" in sys.argv) as flow:
        ok = flow.run()
    sys.exit(0 if ok else 1)
