# ruff: noqa  (written the way the original sequent 3.1.x's users wrote scripts)
# The rest of the original's idioms: an in-memory store, a dotted config_tag, task_construct
# given as threading.Thread and mp.Process, add_event(require=...), requires={}, a callable
# repeats, get_step_recovery, step.path, hosts on a local executor, run() arguments of eventor.
import sequent as seq
import logging
import multiprocessing as mp
import os
import threading
import warnings

appname = os.path.basename(__file__)
HERE = os.path.dirname(os.path.abspath(__file__))


def prog(flow, progname):
    with open(os.path.join(HERE, "ran.txt"), "a") as out:
        out.write("{} {} {} {}\n".format(progname, flow.get_step_name(), flow.get_step_sequence(),
                                         flow.get_step_recovery()))
    return progname


def items():
    return ['x', 'y']


def build(construct, store):
    config = {'prod': {'SEQUENT': {'task_construct': construct, 'max_concurrent': 2,
                                   'stop_on_exception': True, 'sleep_between_loops': 0.05}}}
    myflow = seq.Sequent(name=appname, store=store, config=config, config_tag='prod.SEQUENT',
                         logging_level=logging.INFO)
    s1 = myflow.add_step('s1', repeats=items)
    s11 = s1.add_step('s11', func=prog, kwargs={'flow': myflow, 'progname': 'prog11'},
                      requires={})
    s12 = s1.add_step('s12', func=prog, kwargs={'flow': myflow, 'progname': 'prog12'},
                      requires=((s11, seq.STEP_SUCCESS),), hosts=['remotehost'])
    e1 = myflow.add_event(require=((s1, seq.STEP_SUCCESS),))
    s2 = myflow.add_step('s2', func=prog, kwargs={'flow': myflow, 'progname': 'prog2'},
                         requires=(e1,))
    assert (s1.path, s12.path, s2.path) == ('s1', 's1_s12', 's2')
    return myflow


myflow = build(threading.Thread, ':memory:')
result = myflow.run()
print("run result: {} {}".format(result, myflow.run_id))
myflow.close()

myflow = build(mp.Process, os.path.join(HERE, 'misc.run.db'))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    result = myflow.run(max_loops=-1, host='localhost')
print("run result: {} {}".format(result, myflow.run_id))
print("run() warnings: {}".format(sum('host' in str(w.message) and 'run()' in str(w.message)
                                      for w in caught)))
myflow.close()
