# ruff: noqa  (steps as in the original's examples/runly010.py; its store was a Postgres entry)
import sequent as seq
import logging
import os
import run_progs as rprogs

appname = os.path.basename(__file__)
config_file = os.path.abspath("runly.conf")
myflow = seq.Sequent(name=appname, config=config_file, store="", config_tag="SEQUENT")
s = myflow.add_step(
    "s0",
    repeats=[
        1,
    ],
)
s1 = s.add_step(
    "s1",
    repeats=[
        1,
        2,
    ],
)
s11 = s1.add_step("s11", func=rprogs.prog, kwargs={"progname": "prog11"})
s12 = s1.add_step(
    "s12", func=rprogs.prog, kwargs={"progname": "prog12"}, requires=((s11, seq.STEP_COMPLETE),)
)
s2 = s.add_step(
    "s2",
    requires=((s1, seq.StepStatus.complete),),
)
s21 = s2.add_step("s21", func=rprogs.prog, kwargs={"progname": "prog21"})
s22 = s2.add_step(
    "s22", func=rprogs.prog, kwargs={"progname": "prog21"}, requires=((s21, seq.STEP_COMPLETE),)
)
e1 = s.add_event(
    (
        (s1, seq.STEP_COMPLETE),
        (s2, seq.STEP_COMPLETE),
    )
)
s3 = s.add_step("s3", func=rprogs.prog, kwargs={"progname": "prog3"}, requires=(e1,))
print("run result: %r %s" % (myflow.run(), myflow.run_id))
myflow.close()
