# ruff: noqa  (steps as in the original's examples/runly001.py; store: see test_runly001)
import sequent as seq
import logging
import os
import run_progs as rprogs

config_file = os.path.abspath("runly.conf")
myflow = seq.Sequent(
    config=config_file,
    store="",
    config_tag="SEQUENT",
)
s1 = myflow.add_step(
    "s1",
    repeats=[
        1,
    ],
)
s11 = s1.add_step(
    "s11",
    repeats=[
        1,
    ],
)
kwargs111 = {"progname": "prog111"}
kwargs112 = {"progname": "prog112"}
kwargs12 = {"progname": "prog12"}
kwargs2 = {"progname": "prog2"}
s111 = s1.add_step(
    "s111",
    func=rprogs.prog,
    kwargs=kwargs111,
    repeats=[
        1,
    ],
)
s112 = s1.add_step("s112", func=rprogs.prog, kwargs=kwargs112, requires=((s111, seq.STEP_SUCCESS),))
s12 = s1.add_step("s12", func=rprogs.prog, kwargs=kwargs12, requires=((s11, seq.STEP_SUCCESS),))
s2 = myflow.add_step("s2", func=rprogs.prog, kwargs=kwargs2, requires=((s1, seq.STEP_SUCCESS),))
if __name__ == "__main__":
    print("run result: %r %s" % (myflow.run(), myflow.run_id))
