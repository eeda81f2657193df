# ruff: noqa  (as the original's examples/runly030.py: fail on sqrt(-9), recover with 9)
import sequent as seq
import logging
import math
import os
import run_progs as rprogs

appname = os.path.basename(__file__)


def square(x):
    rprogs.trace("square")
    y = x * x
    return y


def square_root(x):
    rprogs.trace("square_root")
    y = math.sqrt(x)
    return y


def divide(x, y):
    rprogs.trace("divide")
    z = x / y
    return z


def build_flow(run_mode=seq.RUN_RESTART, param=9, run_id=None):
    myflow = seq.Sequent(
        name=appname,
        run_mode=run_mode,
        run_id=run_id,
        config={"sleep_between_loops": 0.05, "LOGGING": {"logging_level": logging.DEBUG}},
    )
    s0 = myflow.add_step(
        "s0",
        repeats=[1],
    )
    s1 = s0.add_step(
        "s1",
        func=square,
        kwargs={"x": 3},
    )
    s2 = s0.add_step(
        "s2",
        square_root,
        kwargs={"x": param},
        requires=[
            (s1, seq.STEP_SUCCESS),
        ],
        recovery={seq.STEP_FAILURE: seq.STEP_RERUN, seq.STEP_SUCCESS: seq.STEP_SKIP},
    )
    s3 = s0.add_step(
        "s3",
        divide,
        kwargs={"x": 9, "y": 3},
        requires=[
            (s2, seq.STEP_SUCCESS),
        ],
    )
    return myflow


ev = build_flow(param=-9)
print("run result: %r %s" % (ev.run(), ev.run_id))
ev.close()
run_id = ev.run_id
ev = build_flow(seq.RUN_RECOVER, param=9, run_id=run_id)
print("run result: %r %s" % (ev.run(), ev.run_id))
ev.close()
