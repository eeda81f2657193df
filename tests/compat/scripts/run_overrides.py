# ruff: noqa  (written the way the original sequent 3.1.x's users wrote scripts)
# run(run_mode=...) and run(recovery_run=...) override the flow's mode for one run (the
# original's runly003 shape); repeats=[1,] on leaves; recovery policies; Sequent(recovery_run=).
import os

import sequent as seq

appname = os.path.basename(__file__)
HERE = os.path.dirname(os.path.abspath(__file__))


def prog(progname, success=True):
    with open(os.path.join(HERE, "ran.txt"), "a") as out:
        out.write("{} {} {} {}\n".format(progname, os.environ["SEQUENT_STEP_NAME"],
                                         os.environ["SEQUENT_STEP_SEQUENCE"],
                                         os.environ["SEQUENT_STEP_RECOVERY"]))
    if not success:
        raise Exception(f"{progname} failed")
    return progname


def build_flow(run_mode=seq.RunMode.restart, recovery_run=None):
    myflow = seq.Sequent(name=appname, run_mode=run_mode, recovery_run=recovery_run,
                         config={'LOGGING': {'logging_level': 20}})
    s11 = myflow.add_step('s11', func=prog, kwargs={'progname': 'prog11', 'success': True},
                          repeats=[1, ],
                          recovery={seq.STEP_FAILURE: seq.STEP_RERUN,
                                    seq.STEP_SUCCESS: seq.STEP_RERUN})
    s12 = myflow.add_step('s12', func=prog, kwargs={'progname': 'prog12', },
                          repeats=[1, ],
                          requires=((s11, seq.STEP_SUCCESS), ))
    return myflow


myflow = build_flow()
result = myflow.run(run_mode=seq.RUN_RESTART, )
first = myflow.run_id
print(f"run result: {result} {myflow.run_id}")
print("\nCOMPETED RESTART; STARTING RECOVER.\n")
result = myflow.run(run_mode=seq.RUN_RECOVER, )
print(f"run result: {result} {myflow.run_id}")
result = myflow.run()
print(f"run result: {result} {myflow.run_id}")
result = myflow.run(run_mode=seq.RUN_RECOVER, recovery_run=first)
print(f"run result: {result} {myflow.run_id}")
myflow.close()

myflow = build_flow(run_mode=seq.RunMode.recover, recovery_run=first)
result = myflow.run()
print(f"run result: {result} {myflow.run_id}")
myflow.close()
