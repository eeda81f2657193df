"""The original's resource example, made runnable (its pools come from sequent itself).

The original imported ``from acris import virtual_resource_pool as vrp``; here the same
``Resource`` and ``ResourcePool`` are ``seq.Resource`` and ``seq.ResourcePool``. The flow is the
seed's simple example with resources: ``s1`` holds both resources of RP1 across its two
iterations, its steps share RP2, and ``s2`` needs one of RP1, so it runs once ``s1`` has ended.

    python examples/seed_resources.py
"""

import logging

import sequent as seq

logger = logging.getLogger(__name__)


class Resources1(seq.Resource): pass
class Resources2(seq.Resource): pass


rp1 = seq.ResourcePool('RP1', resource_cls=Resources1, policy={'resource_limit': 2, }).load()
rp2 = seq.ResourcePool('RP2', resource_cls=Resources2, policy={'resource_limit': 2, }).load()


def prog(progname, success=True):
    logger.info("doing what %s is doing" % progname)
    if not success:
        raise Exception("%s failed" % progname)
    return progname


myflow = seq.Sequent(logging_level=logging.INFO, config={'sleep_between_loops': 0.05,}, )
s1 = myflow.add_step('s1', repeats=[1,2], acquires=[(rp1, 2), ])

s11 = s1.add_step('s11', repeats=[1,2,])

s111 = s11.add_step('s111', func=prog, kwargs={'progname': 'prog1'}, acquires=[(rp2, 1), ])
s112 = s11.add_step('s112', func=prog, kwargs={'progname': 'prog2'}, acquires=[(rp2, 1), ],
                    requires=( (s111, seq.StepStatus.success), ))

s12 = s1.add_step('s12', func=prog, kwargs={'progname': 'prog3'}, acquires=[(rp2, 2), ],
                  requires=( (s11, seq.StepStatus.success), ))

s2 = myflow.add_step('s2', func=prog, kwargs={'progname': 'prog4'}, acquires=[(rp1, 1), ],
                     requires=( (s1, seq.StepStatus.success), ))

myflow.run()
myflow.close()
