# ruff: noqa  (the original's examples' helper module, written again the way they use it)
"""Our own version of the helper the original's examples import: a ``Step`` base class whose
instances are step callables, and ``prog``, which logs through SEQUENT_LOGGER_NAME. Each body
also appends ``progname step sequence recovery`` to ``ran.txt`` beside this file, read by
tests/original/test_original_examples.py."""

import logging
import os
import time

PAUSE = 0.05  # the original sleeps 1 s in prog; the order of bodies does not depend on it
HERE = os.path.dirname(os.path.abspath(__file__))


def trace(progname):
    with open(os.path.join(HERE, "ran.txt"), "a") as out:
        out.write(
            "%s %s %s %s\n"
            % (
                progname,
                os.environ["SEQUENT_STEP_NAME"],
                os.environ["SEQUENT_STEP_SEQUENCE"],
                os.environ["SEQUENT_STEP_RECOVERY"],
            )
        )


class Step(object):
    def __init__(self):
        pass

    def __call__(self, *args, **kwargs):
        self.at_start(*args, **kwargs)
        _status = self.main(*args, **kwargs)
        self.at_end(*args, _status=_status, **kwargs)

    def at_start(self, *args, **kwargs):
        pass

    def main(self, *args, **kwargs):
        pass

    def at_end(self, _status, *args, **kwargs):
        pass


def prog(progname, success=True):
    logger = logging.getLogger(os.getenv("SEQUENT_LOGGER_NAME"))
    logger.info("doing what %s is doing." % progname)
    trace(progname)
    time.sleep(PAUSE)
    if not success:
        raise Exception("%s failed." % progname)
    return progname
