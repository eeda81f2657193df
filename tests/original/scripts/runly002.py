# ruff: noqa  (as the original's examples/runly002.py: a recover as the very first run)
import sequent as seq
import logging
import os

appname = os.path.basename(__file__)
import run_progs as rprogs

myflow = seq.Sequent(
    name=appname, run_mode=seq.RUN_RECOVER, config={"LOGGING": {"logging_level": 10}}
)
s1 = myflow.add_step("s1", repeats=[1, 2])
s11 = s1.add_step(
    "s11",
    func=rprogs.prog,
    kwargs={"progname": "prog11", "success": True},
    repeats=[
        1,
    ],
    recovery={seq.STEP_FAILURE: seq.STEP_RERUN, seq.STEP_SUCCESS: seq.STEP_RERUN},
)
s12 = s1.add_step(
    "s12",
    func=rprogs.prog,
    kwargs={
        "progname": "prog12",
    },
    repeats=[
        1,
    ],
)
s2 = myflow.add_step(
    "s2", func=rprogs.prog, kwargs={"progname": "prog2"}, requires=((s1, seq.STEP_SUCCESS),)
)
if __name__ == "__main__":
    myflow.run()
    myflow.close()
