import sequent as sqnt
import logging

logger=logging.getLogger(__name__)

def prog(flow, progname, step_to_fail=None, iteration_to_fail=''):
    step_name=flow.get_step_name()
    step_sequence=flow.get_step_sequence()
    logger.info("doing what %s is doing (%s/%s)" % (progname, step_name, step_sequence))
    if step_to_fail == step_name and step_sequence== iteration_to_fail:
        raise Exception("%s failed (%s/%s)" % (progname, step_name, step_sequence))
    return progname

def build_flow(run_mode=sqnt.RunMode.restart, step_to_fail=None, iteration_to_fail=''):
    myflow=sqnt.Sequent(logging_level=logging.INFO, run_mode=run_mode,
                        config={'sleep_between_loops': 0.05,}, )

    s1=myflow.add_step('s1', repeats=[1,2])

    s11=s1.add_step('s11', repeats=[1,2,])

    s111=s11.add_step('s111', func=prog, kwargs={'flow': myflow, 'progname': 'prog1',
                                                 'step_to_fail':step_to_fail,
                                                 'iteration_to_fail':iteration_to_fail,})
    s112=s11.add_step('s112', func=prog, kwargs={'flow': myflow, 'progname': 'prog2',
                                                 'step_to_fail':step_to_fail,
                                                 'iteration_to_fail':iteration_to_fail,},
                      requires=( (s111, sqnt.StepStatus.success), ))

    s12=s1.add_step('s12', func=prog, kwargs={'flow': myflow, 'progname': 'prog3',
                                              'step_to_fail':step_to_fail,
                                              'iteration_to_fail':iteration_to_fail,},
                    requires=( (s11, sqnt.StepStatus.success), ))

    s2=myflow.add_step('s2', func=prog, kwargs={'flow': myflow, 'progname': 'prog4',
                                                'step_to_fail':step_to_fail,
                                                'iteration_to_fail':iteration_to_fail,},
                       requires=( (s1, sqnt.StepStatus.success), ))
    return myflow

# creating flow simulating failure
myflow=build_flow(step_to_fail='s1_s11_s111', iteration_to_fail='1.2.2')
myflow.run()
myflow.close()

# creating recovery flow
myflow=build_flow(run_mode=sqnt.RunMode.recover, )
myflow.run()
myflow.close()
