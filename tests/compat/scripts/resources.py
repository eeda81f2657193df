# ruff: noqa  (written the way the original sequent 3.1.x's users wrote scripts)
# Resource pools as the original's README defines them (here from sequent itself, with the
# same arguments): a pool of 1 lets one step hold it at a time.
import os
import time

import sequent as seq

appname = os.path.basename(__file__)
HERE = os.path.dirname(os.path.abspath(__file__))


class StepResource(seq.Resource): pass


rp1 = seq.ResourcePool('RP1', resource_cls=StepResource, policy={'resource_limit': 1, }).load()


def prog(progname):
    with open(os.path.join(HERE, "ran.txt"), "a") as out:
        out.write(f"{progname} start {time.time():.6f}\n")
    time.sleep(0.2)
    with open(os.path.join(HERE, "ran.txt"), "a") as out:
        out.write(f"{progname} end {time.time():.6f}\n")
    return progname


myflow = seq.Sequent(name=appname, config={'sleep_between_loops': 0.05, 'max_concurrent': 0})

s1 = myflow.add_step('s1', repeats=[1, ])
s11 = s1.add_step('s11', func=prog, kwargs={'progname': 'prog11'}, acquires=[(rp1, 1), ])
s12 = s1.add_step('s12', func=prog, kwargs={'progname': 'prog12'}, acquires=[(rp1, 1), ])
s13 = s1.add_step('s13', func=prog, kwargs={'progname': 'prog13'}, acquires=[(rp1, 1), ],
                  releases=None)

result = myflow.run()
print(f"run result: {result} {myflow.run_id}")
myflow.close()
