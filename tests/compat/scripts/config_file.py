# ruff: noqa  (written the way the original sequent 3.1.x's users wrote scripts)
# The original's runly010 shape: a YAML config file named runly.conf under the tag SEQUENT,
# holding keys only the original used; add_event on a container; containers requiring
# containers' completion; a placeholder step with neither func nor children; STEP_COMPLETE
# after a failure; or_.
import logging
import os

import sequent as seq

appname = os.path.basename(__file__)
logger = logging.getLogger(appname)
HERE = os.path.dirname(os.path.abspath(__file__))


def prog(progname, fail_at=None):
    sequence = os.environ["SEQUENT_STEP_SEQUENCE"]
    with open(os.path.join(HERE, "ran.txt"), "a") as out:
        out.write("{} {} {} {}\n".format(progname, os.environ["SEQUENT_STEP_NAME"], sequence,
                                         os.environ["SEQUENT_STEP_RECOVERY"]))
    if sequence == fail_at:
        raise Exception(f"{progname} failed at {sequence}")
    return progname


config_file = os.path.join(HERE, 'runly.conf')
myflow = seq.Sequent(name=appname, config=config_file, config_tag='SEQUENT')

s = myflow.add_step('s0', repeats=[1, ])

s1 = s.add_step('s1', repeats=[1, 2, ])
s11 = s1.add_step('s11', func=prog, kwargs={'progname': 'prog11', 'fail_at': '1.1.1'})
s12 = s1.add_step('s12', func=prog, kwargs={'progname': 'prog12'},
                  requires=((s11, seq.STEP_COMPLETE), ))

s2 = s.add_step('s2', requires=((s1, seq.StepStatus.complete), ), )
s21 = s2.add_step('s21', func=prog, kwargs={'progname': 'prog21'})
s22 = s2.add_step('s22', func=prog, kwargs={'progname': 'prog22'},
                  requires=((s21, seq.STEP_COMPLETE), ))
s23 = s2.add_step('s23', requires=((s22, seq.STEP_SUCCESS), ))

e1 = s.add_event(((s1, seq.STEP_COMPLETE), (s2, seq.STEP_COMPLETE), ))
s3 = s.add_step('s3', func=prog, kwargs={'progname': 'prog3'}, requires=(e1, ))
s4 = s.add_step('s4', func=prog, kwargs={'progname': 'prog4'},
                requires=(seq.or_((s3, seq.STEP_FAILURE), (s3, seq.STEP_SUCCESS)), ))

result = myflow.run()
print(f"run result: {result} {myflow.run_id}")
myflow.close()
