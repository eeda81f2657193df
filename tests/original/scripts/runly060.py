# ruff: noqa  (as the original's examples/runly060.py: leaves share a pool of 2, repeats=range(2))
import sequent as seq
import logging
from sequent import (
    Resource,
    ResourcePool,
)  # the original: from acris import virtual_resource_pool as rp
import os
import run_progs as rprogs

appname = os.path.basename(__file__)


def prog(progname, success=True):
    logger = logging.getLogger(os.getenv("SEQUENT_LOGGER_NAME"))
    logger.info("doing what %s is doing" % progname)
    rprogs.trace(progname)
    if not success:
        raise Exception("%s failed" % progname)
    return progname


class StepResource(Resource):
    pass


rp1 = ResourcePool(
    "RP1",
    resource_cls=StepResource,
    policy={
        "resource_limit": 2,
    },
).load()
myflow = seq.Sequent(
    name=appname,
    config={
        "sleep_between_loops": 0.05,
        "LOGGING": {
            "logging_level": logging.INFO,
        },
    },
)
s1 = myflow.add_step("s1", repeats=range(2))
s11 = s1.add_step(
    "s11",
    repeats=[
        1,
        2,
    ],
)
s111 = s11.add_step(
    "s111",
    func=prog,
    kwargs={"progname": "prog1"},
    acquires=[
        (rp1, 1),
    ],
)
s112 = s11.add_step(
    "s112",
    func=prog,
    kwargs={
        "progname": "prog2",
    },
    acquires=[
        (rp1, 1),
    ],
    requires=((s111, seq.STEP_SUCCESS),),
)
s12 = s1.add_step(
    "s12", func=prog, kwargs={"progname": "prog3"}, requires=((s11, seq.STEP_SUCCESS),)
)
s2 = myflow.add_step(
    "s2", func=prog, kwargs={"progname": "prog4"}, requires=((s1, seq.STEP_SUCCESS),)
)
print("run result: %r %s" % (myflow.run(), myflow.run_id))
myflow.close()
