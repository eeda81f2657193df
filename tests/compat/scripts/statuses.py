# ruff: noqa  (written the way the original sequent 3.1.x's users wrote scripts)
# Every status and mode name of the original, and the behaviours it got wrong: COMPLETE and
# FAILURE after a failure, or_ as a real OR, a step that can no longer run marked skipped.
import logging
import os
import time

import sequent as seq

appname = os.path.basename(__file__)
HERE = os.path.dirname(os.path.abspath(__file__))


def prog(progname, success=True, pause=0):
    with open(os.path.join(HERE, "ran.txt"), "a") as out:
        out.write("{} {} {} {}\n".format(progname, os.environ["SEQUENT_STEP_NAME"],
                                         os.environ["SEQUENT_STEP_SEQUENCE"],
                                         os.environ["SEQUENT_STEP_RECOVERY"]))
    time.sleep(pause)
    if not success:
        raise Exception(f"{progname} failed")
    return progname


assert seq.STEP_READY is seq.StepStatus.ready and seq.STEP_ACTIVE is seq.StepStatus.active
assert seq.STEP_SKIP is seq.StepReplay.skip and seq.RUN_RESTART is seq.RunMode.restart
assert issubclass(seq.ConfigError, seq.SequentError)

myflow = seq.Sequent(name=appname, logging_level=logging.INFO, run_mode=seq.RUN_RESTART,
                     config={'max_concurrent': 1, 'stop_on_exception': False,
                             'task_construct': 'process'})
a = myflow.add_step('a', func=prog, kwargs={'progname': 'a', 'pause': 0.2})
r = myflow.add_step('r', func=prog, kwargs={'progname': 'r'}, requires=((a, seq.STEP_READY),))
v = myflow.add_step('v', func=prog, kwargs={'progname': 'v'}, requires=((a, seq.STEP_ACTIVE),))
b = myflow.add_step('b', func=prog, kwargs={'progname': 'b', 'success': False},
                    requires=((a, seq.STEP_SUCCESS),), config={'stop_on_exception': False})
c = myflow.add_step('c', func=prog, kwargs={'progname': 'c'}, requires=((b, seq.STEP_FAILURE),))
d = myflow.add_step('d', func=prog, kwargs={'progname': 'd'}, requires=((b, seq.STEP_SUCCESS),))
e = myflow.add_step('e', func=prog, kwargs={'progname': 'e'},
                    requires=(seq.or_((d, seq.STEP_SUCCESS), (c, seq.STEP_SUCCESS)),))
f = myflow.add_step('f', func=prog, kwargs={'progname': 'f'}, delay=0.1,
                    requires=((b, seq.STEP_COMPLETE), (e, seq.StepStatus.success)))

result = myflow.run()
print(f"run result: {result} {myflow.run_id}")
myflow.close()
