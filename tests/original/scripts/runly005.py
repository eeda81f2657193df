# ruff: noqa  (as the original's examples/runly005.py: Step objects as callables, spawn start method;
# its "from .run_progs import Step" cannot run as a script, so the import is absolute)
import sequent as seq
import logging
import os
import run_progs as rprogs
from run_progs import Step


class Prog(Step):
    def main(self, *args, **kwargs):
        return rprogs.prog(*args, **kwargs)


appname = os.path.basename(__file__)
myflow = seq.Sequent(name=appname)
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
s111 = s1.add_step(
    "s111",
    func=Prog(),
    kwargs={"progname": "prog1"},
    repeats=[
        1,
    ],
)
s112 = s1.add_step(
    "s112",
    func=Prog(),
    kwargs={
        "progname": "prog2",
    },
    requires=((s111, seq.STEP_SUCCESS),),
)
s12 = s1.add_step(
    "s12", func=Prog(), kwargs={"progname": "prog3"}, requires=((s11, seq.STEP_SUCCESS),)
)
s2 = myflow.add_step(
    "s2", func=Prog(), kwargs={"progname": "prog4"}, requires=((s1, seq.STEP_SUCCESS),)
)
if __name__ == "__main__":
    import multiprocessing as mp

    mp.freeze_support()
    mp.set_start_method("spawn")
    print("run result: %r %s" % (myflow.run(), myflow.run_id))
