import sequent as seq
import logging

logger=logging.getLogger(__name__)

def prog(progname, success=True):
    logger.info("doing what %s is doing" % progname)
    if not success:
        raise Exception("%s failed" % progname)
    return progname

myflow=seq.Sequent(logging_level=logging.INFO,
                   config={'sleep_between_loops': 0.05,})

s1=myflow.add_step('s1', repeats=[1,2])

s11=s1.add_step('s11', repeats=[1,2,])

s111=s11.add_step('s111', func=prog, kwargs={'progname': 'prog1'})
s112=s11.add_step('s112', func=prog, kwargs={'progname': 'prog2'},
                  requires=( (s111, seq.StepStatus.success), ))

s12=s1.add_step('s12', func=prog, kwargs={'progname': 'prog3'},
                requires=( (s11, seq.StepStatus.success), ))

s2=myflow.add_step('s2', func=prog, kwargs={'progname': 'prog4'},
                   requires=( (s1, seq.StepStatus.success), ))

myflow.run()
myflow.close()
