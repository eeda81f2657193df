"""The pitch flow with leaf-level resource pools: one database connection, two upload slots.

A1 and A2 both extract from the database, which allows one connection: although the flow sets
no concurrency limit, they run one after the other (first come, first served). B processes the
extracts. C1, C2 and C3 transmit, sharing a remote server that accepts two uploads at a time.

    python examples/resources_flow.py    # exit status 0 on success, 1 on failure

Each step logs when it starts and ends; the run's summary follows.
"""

import logging
import sys
import time

import sequent as seq

logger = logging.getLogger(__name__)

database = seq.ResourcePool("database", policy={"resource_limit": 1}).load()
uploads = seq.ResourcePool("uploads", policy={"resource_limit": 2}).load()


def work(name: str, seconds: float = 0.2) -> str:
    """Stand in for a batch program: log, take a little time."""
    logger.info("%s starts", name)
    time.sleep(seconds)
    logger.info("%s done", name)
    return name


def build() -> seq.Sequent:
    flow = seq.Sequent(name="resources_flow", config={"max_concurrent": 0})
    success = seq.StepStatus.success
    a1 = flow.add_step("A1", func=work, args=("A1",), acquires=[(database, 1)])
    a2 = flow.add_step("A2", func=work, args=("A2",), acquires=[(database, 1)])
    b = flow.add_step("B", func=work, args=("B",), requires=((a1, success), (a2, success)))
    for name in ("C1", "C2", "C3"):
        flow.add_step(
            name, func=work, args=(name,), acquires=[(uploads, 1)], requires=((b, success),)
        )
    return flow


if __name__ == "__main__":
    with build() as flow:
        ok = flow.run()
    sys.exit(0 if ok else 1)
