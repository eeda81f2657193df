# ruff: noqa  (as the original's examples/runly040.py: s1_s11_s111 fails at 1.2.2, then a recover)
import sequent as sqnt
import logging
import os
import run_progs as rprogs

appname = os.path.basename(__file__)


def prog(progname, step_to_fail=None, iteration_to_fail=""):
    logger = logging.getLogger(os.getenv("SEQUENT_LOGGER_NAME"))
    step_name = os.environ["SEQUENT_STEP_NAME"]
    step_sequence = os.environ["SEQUENT_STEP_SEQUENCE"]
    logger.info("doing what %s is doing (%s/%s)" % (progname, step_name, step_sequence))
    rprogs.trace(progname)
    if step_to_fail == step_name and step_sequence == iteration_to_fail:
        raise Exception("%s failed (%s/%s)" % (progname, step_name, step_sequence))
    return progname


def build_flow(run_mode=sqnt.RUN_RESTART, step_to_fail=None, iteration_to_fail="", run_id=None):
    myflow = sqnt.Sequent(
        name=appname,
        run_mode=run_mode,
        run_id=run_id,
        config={
            "sleep_between_loops": 0.05,
            "LOGGING": {
                "logging_level": logging.INFO,
            },
        },
    )
    s1 = myflow.add_step(
        "s1",
        repeats=[1, 2],
    )
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
        kwargs={
            "progname": "prog1",
            "step_to_fail": step_to_fail,
            "iteration_to_fail": iteration_to_fail,
        },
    )
    s112 = s11.add_step(
        "s112",
        func=prog,
        kwargs={
            "progname": "prog2",
            "step_to_fail": step_to_fail,
            "iteration_to_fail": iteration_to_fail,
        },
        requires=((s111, sqnt.STEP_SUCCESS),),
    )
    s12 = s1.add_step(
        "s12",
        func=prog,
        kwargs={
            "progname": "prog3",
            "step_to_fail": step_to_fail,
            "iteration_to_fail": iteration_to_fail,
        },
        requires=((s11, sqnt.STEP_SUCCESS),),
    )
    s2 = myflow.add_step(
        "s2",
        func=prog,
        kwargs={
            "progname": "prog4",
            "step_to_fail": step_to_fail,
            "iteration_to_fail": iteration_to_fail,
        },
        requires=((s1, sqnt.STEP_SUCCESS),),
    )
    return myflow


myflow = build_flow(step_to_fail="s1_s11_s111", iteration_to_fail="1.2.2")
result = myflow.run()
myflow.close()
print("run result: %r %s" % (result, myflow.run_id))
run_id = myflow.run_id
myflow = build_flow(run_mode=sqnt.RUN_RECOVER, run_id=run_id)
result = myflow.run()
myflow.close()
print("run result: %r %s" % (result, myflow.run_id))
