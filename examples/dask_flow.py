"""A flow on a local Dask cluster (``pip install 'sequent[dask]'``).

    python examples/dask_flow.py

With ``executor="dask"`` sequent starts a ``LocalCluster`` bound to 127.0.0.1 at the first step
and closes it with the flow. The cluster starts its workers with ``spawn``, which imports this
script again in each of them: the ``if __name__ == "__main__":`` guard keeps them from running
the flow too. For a real cluster, pass ``executor=DaskExecutor(address="tcp://host:8786")``
(``from sequent.executors.dask import DaskExecutor``) and restrict steps to workers with
``hosts=[...]``.
"""

import logging
import os
import socket
import sys

import sequent as seq

logger = logging.getLogger(__name__)


def where(name: str) -> str:
    """Log where the step runs; the record comes back to this script's log."""
    context = seq.current()
    assert context is not None, "where() runs as a step of a flow"
    logger.info(
        "%s (%s/%s) ran on %s, pid %d, SEQUENT_STEP_NAME=%s",
        name,
        context.name,
        context.sequence,
        socket.gethostname(),
        os.getpid(),
        os.environ["SEQUENT_STEP_NAME"],
    )
    return name


def main() -> bool:
    with seq.Sequent(
        name="dask-local",
        executor="dask",
        logging_level=logging.INFO,
        config={"max_concurrent": 2},
    ) as flow:
        first = flow.add_step("first", func=where, args=("first",))
        fan = flow.add_step(
            "fan", repeats=["left", "right"], requires=((first, seq.StepStatus.success),)
        )
        fan.add_step("branch", func=where, args=("branch",))
        flow.add_step(
            "last",
            func=seq.Program([sys.executable, "-c", "print('a program step on a Dask worker')"]),
            requires=((fan, seq.StepStatus.success),),
        )
        return flow.run()


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
