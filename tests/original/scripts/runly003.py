# ruff: noqa  (as the original's examples/runly003.py: restart, then recover, one flow object)
import sequent as seq
import logging
import os

appname = os.path.basename(__file__)
import run_progs as rprogs

myflow = seq.Sequent(name=appname, config={"LOGGING": {"logging_level": 20}})
s11 = myflow.add_step(
    "s11",
    func=rprogs.prog,
    kwargs={"progname": "prog11", "success": True},
    repeats=[
        1,
    ],
    recovery={seq.STEP_FAILURE: seq.STEP_RERUN, seq.STEP_SUCCESS: seq.STEP_RERUN},
)
s12 = myflow.add_step(
    "s12",
    func=rprogs.prog,
    kwargs={
        "progname": "prog12",
    },
    repeats=[
        1,
    ],
    requires=((s11, seq.STEP_SUCCESS),),
)
if __name__ == "__main__":
    print(
        "run result: %r %s"
        % (
            myflow.run(
                run_mode=seq.RUN_RESTART,
            ),
            myflow.run_id,
        )
    )
    print("\nCOMPETED RESTART; STARTING RECOVER.\n")
    print(
        "run result: %r %s"
        % (
            myflow.run(
                run_mode=seq.RUN_RECOVER,
            ),
            myflow.run_id,
        )
    )
    myflow.close()
