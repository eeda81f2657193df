# ruff: noqa  (written the way the original sequent 3.1.x's users wrote scripts)
# task_construct='invoke' (the serial executor): steps read the EVENTOR_*/SEQUENT_* variables
# as in every mode of the original; arguments only the original used are accepted.
import logging
import os

import sequent as seq

appname = os.path.basename(__file__)
HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ['STEP_NAME', 'STEP_SEQUENCE', 'STEP_RECOVERY', 'LOGGER_NAME']


def prog(progname):
    values = [os.environ['EVENTOR_' + name] for name in NAMES]
    assert values == [os.environ['SEQUENT_' + name] for name in NAMES]
    logging.getLogger(os.environ['EVENTOR_LOGGER_NAME']).info("doing what %s is doing", progname)
    with open(os.path.join(HERE, "ran.txt"), "a") as out:
        out.write("{} {} {} {}\n".format(progname, *values[:3]))
    return os.getpid()


myflow = seq.Sequent(name=appname, store=os.path.join(HERE, 'serial.run.db'),
                     config={'task_construct': 'invoke', 'max_concurrent': 1,
                             'stop_on_exception': True, 'workdir': HERE,
                             'logdir': os.path.join(HERE, 'logs'), 'sleep_between_loops': 1},
                     host='localhost', import_module='examples.run_progs')

s1 = myflow.add_step('s1', repeats=range(2))
s11 = s1.add_step('s11', func=prog, kwargs={'progname': 'prog11'}, hosts=[],
                  import_module='examples.run_progs', import_file='run_progs.py')
s12 = s1.add_step('s12', func=prog, args=('prog12',), requires=((s11, seq.STEP_SUCCESS), ),
                  delay=0.05, config={'stop_on_exception': True})
s2 = myflow.add_step('s2', func=prog, args=['prog2'], kwargs={}, requires=((s1, seq.STEP_SUCCESS),),
                     acquires=[], releases=None, recovery={})

result = myflow.run(max_loops=-1)
print(f"run result: {result} {myflow.run_id}")
print("left in environ: {}".format(sorted(k for k in os.environ
                                          if k.startswith(('SEQUENT_STEP', 'EVENTOR_')))))
print(f"orchestrator pid: {os.getpid()}")
myflow.close()
