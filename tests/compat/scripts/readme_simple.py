# ruff: noqa  (written the way the original sequent 3.1.x's users wrote scripts)
# The 3.1.x README's simple example, as its users wrote it: LOGGING config, the STEP_* names,
# a logger named by SEQUENT_LOGGER_NAME, no __main__ guard, the default executor.
import logging
import os

import sequent as seq

HERE = os.path.dirname(os.path.abspath(__file__))


def prog(progname, success=True):
    logger = logging.getLogger(os.getenv("SEQUENT_LOGGER_NAME"))
    logger.info(f"doing what {progname} is doing")
    logger.debug(f"details of what {progname} is doing")
    with open(os.path.join(HERE, "ran.txt"), "a") as out:
        out.write("{} {} {} {}\n".format(progname, os.environ["SEQUENT_STEP_NAME"],
                                         os.environ["SEQUENT_STEP_SEQUENCE"],
                                         os.environ["EVENTOR_STEP_RECOVERY"]))
    if not success:
        raise Exception(f"{progname} failed")
    return progname


myflow = seq.Sequent(config={'sleep_between_loops': 0.05,
                             'LOGGING': {'logging_level': logging.DEBUG,
                                         'logdir': os.path.join(HERE, 'logs')}})

s1 = myflow.add_step('s1', repeats=[1, 2])

s11 = s1.add_step('s11', repeats=[1, 2, ])

s111 = s11.add_step('s111', func=prog, kwargs={'progname': 'prog1'})
s112 = s11.add_step('s112', func=prog, kwargs={'progname': 'prog2'},
                    requires=((s111, seq.STEP_SUCCESS), ))

s12 = s1.add_step('s12', func=prog, kwargs={'progname': 'prog3'},
                  requires=((s11, seq.STEP_SUCCESS), ))

s2 = myflow.add_step('s2', func=prog, kwargs={'progname': 'prog4'},
                     requires=((s1, seq.STEP_SUCCESS),))

result = myflow.run()
print(f"run result: {result} {myflow.run_id}")
myflow.close()
