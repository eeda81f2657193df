"""The original library's two examples, saved as plain scripts, run with ``python script.py``.

As the seed shows them (its one typo, ``require=s(``, fixed): no ``if __name__ == "__main__":``
guard, step functions defined in the script, the default executor (a warm pool of worker
processes, forked). Then the same scripts with the guard and the ``spawn`` start method, which
imports the script again in every worker. Each must print the documented log lines in the
documented order and end with ``Processing finished with: success`` (the recovery example's
first run ends with ``failure``, as documented).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SIMPLE = """\
import sequent as seq
import logging

logger=logging.getLogger(__name__)

def prog(progname, success=True):
    logger.info("doing what %s is doing" % progname)
    if not success:
        raise Exception("%s failed" % progname)
    return progname

@@BODY
myflow=seq.Sequent(logging_level=logging.INFO,
                   config={'sleep_between_loops': 0.05,@@CONFIG})

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
"""

RECOVERY = """\
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
                        config={'sleep_between_loops': 0.05,@@CONFIG}, )

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

@@BODY
# creating flow simulating failure
myflow=build_flow(step_to_fail='s1_s11_s111', iteration_to_fail='1.2.2')
myflow.run()
myflow.close()

# creating recovery flow
myflow=build_flow(run_mode=sqnt.RunMode.recover, )
myflow.run()
myflow.close()
"""

VARIANTS = {
    "plain": ("", ""),  # as the seed shows it, on the default executor
    "guard-spawn": ("if __name__ == '__main__':", " 'start_method': 'spawn',"),
}

DOING = re.compile(r"\]\[ INFO \]\[ doing what (prog\d)(?: is doing)(?: \((\S+)\))? \]")
FINISHED = re.compile(r"Processing finished with: (\w+) \]")


def script(source: str, variant: str) -> str:
    """``source`` as the variant: under a main guard (the body indented) and with its config."""
    guard, config = VARIANTS[variant]
    head, body = source.split("@@BODY\n")
    if guard:
        body = guard + "\n" + textwrap.indent(body, "    ")
    return (head + body).replace("@@CONFIG", config)


def run_script(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, path.name],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_seed_simple_example_runs_as_a_script(variant, tmp_path):
    output = run_script(tmp_path, "runly00.py", script(SIMPLE, variant))
    assert "on the process executor" in output
    assert [prog for prog, _ in DOING.findall(output)] == [
        "prog1",
        "prog2",
        "prog1",
        "prog2",
        "prog3",
        "prog1",
        "prog2",
        "prog1",
        "prog2",
        "prog3",
        "prog4",
    ]
    assert FINISHED.findall(output) == ["success"]
    assert output.rstrip().endswith("[ Processing finished with: success ]")
    assert (tmp_path / "runly00.run.db").exists()  # the default store, next to the script


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_seed_recovery_example_runs_as_a_script(variant, tmp_path):
    output = run_script(tmp_path, "runly04.py", script(RECOVERY, variant))
    first, second = output.split("Processing finished with: failure ]")
    assert FINISHED.findall(output) == ["failure", "success"]
    assert DOING.findall(first) == [
        ("prog1", "s1_s11_s111/1.1.1"),
        ("prog2", "s1_s11_s112/1.1.1"),
        ("prog1", "s1_s11_s111/1.1.2"),
        ("prog2", "s1_s11_s112/1.1.2"),
        ("prog3", "s1_s12/1.1"),
        ("prog1", "s1_s11_s111/1.2.1"),
        ("prog2", "s1_s11_s112/1.2.1"),
        ("prog1", "s1_s11_s111/1.2.2"),
    ]
    assert "Exception: prog1 failed (s1_s11_s111/1.2.2)" in first
    assert DOING.findall(second) == [
        ("prog1", "s1_s11_s111/1.2.2"),
        ("prog2", "s1_s11_s112/1.2.2"),
        ("prog3", "s1_s12/1.2"),
        ("prog4", "s2/1"),
    ]
    assert second.rstrip().endswith("[ Processing finished with: success ]")
