# ruff: noqa  (written the way the original sequent 3.1.x's users wrote scripts)
# The 3.1.x README's recovery example: Sequent(run_id=...) names the run to recover, the step
# reads its name from the environment, a Sequent passed in kwargs, default store beside the script.
import logging
import os

import sequent as sqnt

appname = os.path.basename(__file__)
logger = logging.getLogger(appname)
HERE = os.path.dirname(os.path.abspath(__file__))


def prog(flow, progname, step_to_fail=None, iteration_to_fail=''):
    logger = logging.getLogger(os.getenv("SEQUENT_LOGGER_NAME"))
    step_name = flow.get_step_name()
    step_sequence = flow.get_step_sequence()
    assert step_name == os.environ["SEQUENT_STEP_NAME"] == os.environ["EVENTOR_STEP_NAME"]
    logger.info(f"doing what {progname} is doing ({step_name}/{step_sequence})")
    with open(os.path.join(HERE, "ran.txt"), "a") as out:
        out.write("{} {} {} {}\n".format(progname, step_name, step_sequence,
                                         os.environ["SEQUENT_STEP_RECOVERY"]))
    if step_to_fail == step_name and step_sequence == iteration_to_fail:
        raise Exception(f"{progname} failed ({step_name}/{step_sequence})")
    return progname


def build_flow(run_mode=sqnt.RUN_RESTART, run_id=None, step_to_fail=None, iteration_to_fail=''):
    myflow = sqnt.Sequent(name=appname, run_mode=run_mode, run_id=run_id,
                          config={'sleep_between_loops': 0.05,
                                  'LOGGING': {'logging_level': logging.INFO}}, )

    s1 = myflow.add_step('s1', repeats=[1, 2])

    s11 = s1.add_step('s11', repeats=[1, 2, ])

    s111 = s11.add_step('s111', func=prog, kwargs={'flow': myflow, 'progname': 'prog1',
                                                   'step_to_fail': step_to_fail,
                                                   'iteration_to_fail': iteration_to_fail, })
    s112 = s11.add_step('s112', func=prog, kwargs={'flow': myflow, 'progname': 'prog2',
                                                   'step_to_fail': step_to_fail,
                                                   'iteration_to_fail': iteration_to_fail, },
                        requires=((s111, sqnt.STEP_SUCCESS),))

    s12 = s1.add_step('s12', func=prog, kwargs={'flow': myflow, 'progname': 'prog3',
                                                'step_to_fail': step_to_fail,
                                                'iteration_to_fail': iteration_to_fail, },
                      requires=((s11, sqnt.STEP_SUCCESS),))

    s2 = myflow.add_step('s2', func=prog, kwargs={'flow': myflow, 'progname': 'prog4',
                                                  'step_to_fail': step_to_fail,
                                                  'iteration_to_fail': iteration_to_fail, },
                         requires=((s1, sqnt.STEP_SUCCESS),))
    return myflow


# creating flow simulating failure
myflow = build_flow(step_to_fail='s1_s11_s111', iteration_to_fail='1.2.2')
result = myflow.run()
myflow.close()
print(f"run result: {result} {myflow.run_id}")

run_id = myflow.run_id

# creating recovery flow
myflow = build_flow(run_mode=sqnt.RUN_RECOVER, run_id=run_id)
result = myflow.run()
myflow.close()
print(f"run result: {result} {myflow.run_id}")
