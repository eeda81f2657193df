"""A catalogue of bad inputs: each is refused with a clear error before anything runs or is written.

Every case asserts (SPEC section 8):
- the error is the named ``SequentError`` subclass and also the builtin a caller would catch;
- the message names the culprit (the step, key, value or file) and, where one is given, the fix;
- nothing ran (no step was called), nothing was written to the store (the file is absent, or
  its bytes are unchanged), and no run log was started.

The table is the evidence: add a row for every mistake a user reported or could make.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import sequent as seq
from sequent.errors import (
    ConfigError,
    CycleError,
    DefinitionError,
    DefinitionTypeError,
    DuplicateStepError,
    ExecutorError,
    NotSendableError,
    RecoveryError,
    ResourceError,
    SequentError,
    StoreError,
    UnknownStepError,
)

from .conftest import tally

S = seq.StepStatus


class Ctx:
    """What a case may use: flows on a file store under ``tmp_path``, a recording step."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.store = tmp_path / "flow.run.db"
        self.logdir = tmp_path / "logs"
        self.calls: list[Any] = []
        self.flows: list[seq.Sequent] = []
        self.closing: list[Any] = []

    def step(self, *args: Any, **kwargs: Any) -> None:
        """A step function that notes each call (nothing may call it)."""
        self.calls.append((args, kwargs))

    def flow(self, **options: Any) -> seq.Sequent:
        config = options.pop("config", {})
        if isinstance(config, dict):
            config = {"logdir": str(self.logdir), **config}
        options.setdefault("name", "bad")
        options.setdefault("store", str(self.store))
        options.setdefault("executor", "serial")
        options.setdefault("logging_level", logging.WARNING)
        flow = seq.Sequent(config=config, **options)
        self.flows.append(flow)
        return flow

    def file(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    def run_of_another_flow(self) -> None:
        """Leave a store holding one finished run of flow 'other'."""
        flow = self.flow(name="other")
        flow.add_step("a", func=operator.add, args=(1, 2))
        assert flow.run()
        flow.close()
        self.flows.remove(flow)
        self.calls.clear()


@dataclass(frozen=True)
class Bad:
    """One bad input: ``act`` must raise ``error`` (also a ``builtin``) naming ``culprit``."""

    id: str
    act: Callable[[Ctx], Any]
    error: type[SequentError]
    builtin: type[Exception]
    culprit: tuple[str, ...]
    fix: str | None = None
    prepare: Callable[[Ctx], Any] | None = None


def _leaf(ctx: Ctx, **options: Any) -> Any:
    """Add one leaf ``a`` with ``options`` to a fresh flow."""
    return ctx.flow().add_step("a", func=ctx.step, **options)


def _two(ctx: Ctx) -> tuple[seq.Sequent, seq.Step]:
    flow = ctx.flow()
    return flow, flow.add_step("a", func=ctx.step)


def _after_a(**options: Any) -> Callable[[Ctx], Any]:
    """An act that adds ``b`` with ``options`` after a leaf ``a``; ``"A"`` stands for a's handle."""

    def act(ctx: Ctx) -> Any:
        flow, a = _two(ctx)
        if "requires" in options:
            options["requires"] = _substitute(options["requires"], a)
        return flow.add_step("b", func=ctx.step, **options)

    return act


def _substitute(value: Any, a: seq.Step) -> Any:
    if value == "A":
        return a
    if isinstance(value, tuple):
        return tuple(_substitute(item, a) for item in value)
    return value


def _twice(first: str, second: str, nest_first: bool) -> Callable[[Ctx], Any]:
    """An act adding two steps whose paths collide: ``a`` > ``b`` and ``a_b``, either order."""

    def act(ctx: Ctx) -> Any:
        flow = ctx.flow()
        if nest_first:
            flow.add_step(first).add_step(second, func=ctx.step)
            return flow.add_step(f"{first}_{second}", func=ctx.step)
        flow.add_step(f"{first}_{second}", func=ctx.step)
        return flow.add_step(first).add_step(second, func=ctx.step)

    return act


def _run(build: Callable[[Ctx, seq.Sequent], Any], **flow_options: Any) -> Callable[[Ctx], Any]:
    """An act that builds a flow with ``build`` then runs it (errors found when compiling)."""

    def act(ctx: Ctx) -> Any:
        flow = ctx.flow(**flow_options)
        build(ctx, flow)
        return flow.run()

    return act


def _plan_only(build: Callable[[Ctx, seq.Sequent], Any]) -> Callable[[Ctx], Any]:
    def act(ctx: Ctx) -> Any:
        flow = ctx.flow()
        build(ctx, flow)
        return flow.plan()

    return act


def _cycle(ctx: Ctx, flow: seq.Sequent) -> None:
    flow.add_step("a", func=ctx.step, requires=("c", S.success))
    flow.add_step("b", func=ctx.step, requires=("a", S.success))
    flow.add_step("c", func=ctx.step, requires=("b", S.complete))


def _cycle_inside(ctx: Ctx, flow: seq.Sequent) -> None:
    box = flow.add_step("box")
    box.add_step("x", func=ctx.step, requires=("y", S.success))
    box.add_step("y", func=ctx.step, requires=("x", S.failure))


def _from_outside(ctx: Ctx) -> Any:
    flow = ctx.flow()
    box = flow.add_step("box")
    inner = box.add_step("inner", func=ctx.step)
    return flow.add_step("outside", func=ctx.step, requires=(inner, S.success))


def _into_child(ctx: Ctx) -> Any:
    flow = ctx.flow()
    box = flow.add_step("box")
    first = flow.add_step("first", func=ctx.step)
    return box.add_step("inner", func=ctx.step, requires=(first, S.success))


def _other_flow(ctx: Ctx) -> Any:
    other = ctx.flow(name="other")
    foreign = other.add_step("x", func=ctx.step)
    return ctx.flow().add_step("a", func=ctx.step, requires=(foreign, S.success))


def _event_of_other_flow(ctx: Ctx) -> Any:
    other = ctx.flow(name="other")
    x = other.add_step("x", func=ctx.step)
    event = other.add_event((x, S.success))
    return ctx.flow().add_step("a", func=ctx.step, requires=event)


def _pool(limit: int = 2) -> seq.ResourcePool:
    return seq.ResourcePool("gpus", policy={"resource_limit": limit}).load()


def _recover(**options: Any) -> Callable[[Ctx], Any]:
    def act(ctx: Ctx) -> Any:
        flow = ctx.flow(run_mode=seq.RunMode.recover, **options)
        flow.add_step("a", func=ctx.step)
        return flow.run()

    return act


def _process_repeating(make: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
    """An act running, on the process executor, a container repeating over 1 and ``make(ctx)``."""

    def act(ctx: Ctx) -> Any:
        try:
            import sequent.executors.process  # noqa: F401
        except ImportError as exc:
            pytest.skip(f"executor 'process' unavailable: {exc}")
        flow = ctx.flow(executor="process")
        box = flow.add_step("box", repeats=[1, make(ctx)])
        box.add_step("each", func=ctx.step)
        return flow.run()

    return act


def _process_with(make: Callable[[Ctx], Any], where: str) -> Callable[[Ctx], Any]:
    """An act running, on the process executor, a step given ``make(ctx)`` in args or kwargs."""

    def act(ctx: Ctx) -> Any:
        try:
            import sequent.executors.process  # noqa: F401
        except ImportError as exc:
            pytest.skip(f"executor 'process' unavailable: {exc}")
        value = make(ctx)
        flow = ctx.flow(executor="process")
        if where == "kwargs":
            flow.add_step("unsendable", func=operator.add, kwargs={"handle": value})
        else:
            flow.add_step("unsendable", func=operator.add, args=(1, value))
        return flow.run()

    return act


def _open_file(ctx: Ctx) -> Any:
    handle = open(ctx.tmp / "out.txt", "w", encoding="utf-8")  # noqa: SIM115
    ctx.closing.append(handle)
    return handle


def _not_sqlite(ctx: Ctx) -> None:
    ctx.store.write_text("name,value\nnot,a store\n", encoding="utf-8")


def _foreign_sqlite(ctx: Ctx) -> None:
    conn = sqlite3.connect(ctx.store)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
    conn.commit()
    conn.close()


def _truncated_store(ctx: Ctx) -> None:
    ctx.run_of_another_flow()
    data = ctx.store.read_bytes()
    ctx.store.write_bytes(data[:100] + b"\0" * 50 + data[150:1024])


def _store_in_run(ctx: Ctx) -> Any:
    flow = ctx.flow()
    flow.add_step("a", func=ctx.step)
    return flow.run()


YAML_OK = "sequent:\n  max_concurrent: 2\n"

CASES = [
    # -- Sequent(...) -----------------------------------------------------------------------
    Bad("flow-name-int", lambda c: c.flow(name=3), DefinitionTypeError, TypeError, ("name", "3")),
    Bad("store-int", lambda c: c.flow(store=5), DefinitionTypeError, TypeError, ("store", "5")),
    Bad(
        "run-mode-string",
        lambda c: c.flow(run_mode="recover"),
        DefinitionTypeError,
        TypeError,
        ("run_mode", "'recover'"),
        "RunMode.recover",
    ),
    Bad(
        "recovery-run-int",
        lambda c: c.flow(recovery_run=12),
        DefinitionTypeError,
        TypeError,
        ("recovery_run", "12"),
    ),
    Bad(
        "logging-level-list",
        lambda c: c.flow(logging_level=[]),
        DefinitionTypeError,
        TypeError,
        ("logging_level", "[]"),
    ),
    Bad(
        "logging-level-in-config-shadowed",
        lambda c: c.flow(logging_level=logging.INFO, config={"LOGGING": {"logging_level": "LOUD"}}),
        DefinitionError,
        ValueError,
        ("config LOGGING", "logging_level", "'LOUD'"),
        "logging.INFO",
    ),
    Bad(
        "logging-level-unknown-name",
        lambda c: c.flow(logging_level="LOUD"),
        DefinitionError,
        ValueError,
        ("logging_level", "'LOUD'"),
        "logging.INFO",
    ),
    Bad(
        "program-unclosed-quote",
        lambda c: seq.Program("echo 'abc"),
        DefinitionError,
        ValueError,
        ("Program", '"echo \'abc"', "No closing quotation"),
        "as a list of strings",
    ),
    Bad(
        "program-misspelt-keyword",
        lambda c: seq.Program(["true"], timout=5),
        DefinitionTypeError,
        TypeError,
        ("Program", "'timout'", "did you mean 'timeout'"),
    ),
    Bad(
        "executor-unknown",
        lambda c: c.flow(executor="gpu"),
        ExecutorError,
        ValueError,
        ("'gpu'",),
        "thread",
    ),
    Bad(
        "task-construct-unknown",
        lambda c: c.flow(executor=None, config={"task_construct": "fork"}),
        ExecutorError,
        ValueError,
        ("'fork'",),
        "process",
    ),
    Bad(
        "executor-int-found-at-run",
        _run(lambda c, f: f.add_step("a", func=c.step), executor=42),
        ExecutorError,
        ValueError,
        ("42",),
        "thread",
    ),
    Bad(
        "executor-object-without-submit",
        _run(lambda c, f: f.add_step("a", func=c.step), executor=object()),
        ExecutorError,
        ValueError,
        ("object",),
        "thread",
    ),
    # -- config -----------------------------------------------------------------------------
    Bad(
        "config-tag-int",
        lambda c: c.flow(config=c.file("flow.yaml", YAML_OK), config_tag=5),
        ConfigError,
        ValueError,
        ("config_tag", "5"),
    ),
    Bad(
        "config-unknown-key",
        lambda c: c.flow(config={"max_concurent": 2}),
        ConfigError,
        ValueError,
        ("max_concurent",),
        "max_concurrent",
    ),
    Bad(
        "config-max-concurrent-string",
        lambda c: c.flow(config={"max_concurrent": "2"}),
        ConfigError,
        ValueError,
        ("max_concurrent", "'2'"),
    ),
    Bad(
        "config-max-concurrent-bool",
        lambda c: c.flow(config={"max_concurrent": True}),
        ConfigError,
        ValueError,
        ("max_concurrent", "True"),
    ),
    Bad(
        "config-stop-on-exception-string",
        lambda c: c.flow(config={"stop_on_exception": "no"}),
        ConfigError,
        ValueError,
        ("stop_on_exception", "'no'"),
        "True or False",
    ),
    Bad(
        "config-logdir-int",
        lambda c: c.flow(config={"logdir": 5}),
        ConfigError,
        ValueError,
        ("logdir", "5"),
    ),
    Bad(
        "config-sleep-negative",
        lambda c: c.flow(config={"sleep_between_loops": -1}),
        ConfigError,
        ValueError,
        ("sleep_between_loops", "-1"),
    ),
    Bad("config-not-a-mapping", lambda c: c.flow(config=42), ConfigError, ValueError, ("42",)),
    Bad(
        "config-file-missing",
        lambda c: c.flow(config=str(c.tmp / "nowhere.yaml")),
        ConfigError,
        ValueError,
        ("nowhere.yaml", "does not exist"),
    ),
    Bad(
        "config-file-not-yaml",
        lambda c: c.flow(config=c.file("flow.ini", "[sequent]\nmax_concurrent = 2\n")),
        ConfigError,
        ValueError,
        ("flow.ini",),
        ".toml",
    ),
    Bad(
        "yaml-bad-syntax",
        lambda c: c.flow(config=c.file("bad.yaml", "sequent: [max_concurrent: 2\n")),
        ConfigError,
        ValueError,
        ("bad.yaml", "cannot be parsed"),
    ),
    Bad(
        "yaml-missing-config-tag",
        lambda c: c.flow(config=c.file("flow.yaml", YAML_OK), config_tag="production"),
        ConfigError,
        ValueError,
        ("'production'",),
    ),
    Bad(
        "yaml-config-tag-not-a-mapping",
        lambda c: c.flow(
            config=c.file("flow.yaml", "sequent:\n  max_concurrent: 2\n"),
            config_tag="sequent.max_concurrent",
        ),
        ConfigError,
        ValueError,
        ("'sequent.max_concurrent'", "not a mapping"),
    ),
    Bad(
        "yaml-unknown-key",
        lambda c: c.flow(
            config=c.file("flow.yaml", "sequent:\n  max_concurrency: 2\n"), config_tag="sequent"
        ),
        ConfigError,
        ValueError,
        ("max_concurrency", "flow.yaml", "config_tag 'sequent'"),
        "max_concurrent",
    ),
    Bad(
        "yaml-top-level-list",
        lambda c: c.flow(config=c.file("list.yaml", "- 1\n- 2\n")),
        ConfigError,
        ValueError,
        ("[1, 2]",),
    ),
    Bad(
        "toml-bad-syntax",
        lambda c: c.flow(config=c.file("bad.toml", "[sequent\nmax_concurrent = 2\n")),
        ConfigError,
        ValueError,
        ("bad.toml", "cannot be parsed"),
    ),
    Bad(
        "toml-wrong-value",
        lambda c: c.flow(
            config=c.file("flow.toml", "[sequent]\nstop_on_exception = 'yes'\n"),
            config_tag="sequent",
        ),
        ConfigError,
        ValueError,
        ("stop_on_exception", "'yes'"),
    ),
    # -- add_step: names and paths ----------------------------------------------------------
    Bad(
        "name-empty",
        lambda c: c.flow().add_step("", func=c.step),
        DefinitionTypeError,
        TypeError,
        ("name", "''"),
    ),
    Bad(
        "name-int",
        lambda c: c.flow().add_step(7, func=c.step),
        DefinitionTypeError,
        TypeError,
        ("name", "7"),
    ),
    Bad(
        "name-slash",
        lambda c: c.flow().add_step("a/b", func=c.step),
        DefinitionError,
        ValueError,
        ("'a/b'",),
        "rename",
    ),
    Bad(
        "name-at-sign",
        lambda c: c.flow().add_step("a@b", func=c.step),
        DefinitionError,
        ValueError,
        ("'a@b'", "'@'", "STEP@SEQUENCE"),
        "rename",
    ),
    Bad(
        "name-newline",
        lambda c: c.flow().add_step("a\nb", func=c.step),
        DefinitionError,
        ValueError,
        ("'a\\nb'", "control characters"),
        "rename",
    ),
    Bad(
        "name-duplicate-sibling",
        lambda c: _two(c)[0].add_step("a", func=c.step),
        DuplicateStepError,
        ValueError,
        ("'a'",),
        "another name",
    ),
    Bad(
        "path-collision-nested-then-flat",
        _twice("a", "b", nest_first=True),
        DuplicateStepError,
        ValueError,
        ("'a_b'", "'b'"),
        "rename",
    ),
    Bad(
        "path-collision-flat-then-nested",
        _twice("a", "b", nest_first=False),
        DuplicateStepError,
        ValueError,
        ("'a_b'",),
        "rename",
    ),
    # -- add_step: func, args, kwargs -------------------------------------------------------
    Bad(
        "keyword-require-the-seeds-typo",
        _after_a(require=(("a", S.success),)),
        DefinitionTypeError,
        TypeError,
        ("'b'", "'require'"),
        "did you mean 'requires'?",
    ),
    Bad(
        "keyword-misspelled-on-a-container",
        lambda c: c.flow().add_step("box").add_step("x", func=c.step, timout=3),
        DefinitionTypeError,
        TypeError,
        ("'x'", "'timout'"),
        "did you mean 'timeout'?",
    ),
    Bad(
        "func-not-callable",
        lambda c: c.flow().add_step("a", func="print"),
        DefinitionTypeError,
        TypeError,
        ("'a'", "func", "'print'"),
    ),
    Bad(
        "args-int",
        lambda c: _leaf(c, args=5),
        DefinitionTypeError,
        TypeError,
        ("'a'", "args", "5"),
    ),
    Bad(
        "args-string",
        lambda c: _leaf(c, args="abc"),
        DefinitionTypeError,
        TypeError,
        ("'a'", "args", "'abc'"),
    ),
    Bad(
        "kwargs-list",
        lambda c: _leaf(c, kwargs=[1, 2]),
        DefinitionTypeError,
        TypeError,
        ("'a'", "kwargs"),
    ),
    Bad(
        "kwargs-int-keys",
        lambda c: _leaf(c, kwargs={1: 2}),
        DefinitionTypeError,
        TypeError,
        ("'a'", "kwargs", "{1: 2}"),
    ),
    Bad(
        "container-with-func",
        lambda c: c.flow().add_step("a", func=c.step).add_step("child", func=c.step),
        DefinitionError,
        ValueError,
        ("'child'", "'a'"),
        "drop func=",
    ),
    Bad(
        "leaf-with-two-repeats",
        _run(lambda c, f: f.add_step("a", func=c.step, repeats=[1, 2])),
        DefinitionError,
        ValueError,
        ("'a'", "repeats="),
        "child step",
    ),
    Bad(
        "flow-without-steps",
        _run(lambda c, f: None),
        DefinitionError,
        ValueError,
        ("'bad'", "no steps"),
        "add_step",
    ),
    # -- requires ---------------------------------------------------------------------------
    Bad(
        "requires-step-without-status",
        _after_a(requires="A"),
        DefinitionTypeError,
        TypeError,
        ("'b'", "'a'", "without a status"),
        "StepStatus.success",
    ),
    Bad(
        "requires-int",
        lambda c: _leaf(c, requires=42),
        DefinitionTypeError,
        TypeError,
        ("'a'", "42"),
        "or_",
    ),
    Bad(
        "requires-status-skipped",
        _after_a(requires=("A", S.skipped)),
        DefinitionError,
        ValueError,
        ("'b'", "'skipped'"),
        "complete",
    ),
    Bad(
        "requires-status-interrupted-string",
        _after_a(requires=("a", "interrupted")),
        DefinitionError,
        ValueError,
        ("'b'", "'interrupted'"),
    ),
    Bad(
        "requires-misspelt-status",
        _after_a(requires=("A", "succes")),
        DefinitionTypeError,
        TypeError,
        ("'b'", "'a'", "'succes'", "not a status", "did you mean 'success'"),
        "StepStatus.success",
    ),
    Bad(
        "requires-none-as-status",
        _after_a(requires=("a", None)),
        DefinitionTypeError,
        TypeError,
        ("'b'", "'a'", "None", "not a status"),
        "StepStatus.success",
    ),
    Bad(
        "requires-replay-as-status",
        _after_a(requires=("A", seq.StepReplay.skip)),
        DefinitionTypeError,
        TypeError,
        ("'b'", "'a'", "skip", "not a status"),
    ),
    Bad(
        "requires-triple",
        _after_a(requires=("A", S.success, 3)),
        DefinitionTypeError,
        TypeError,
        ("'b'", "'a'", "three values", "(step, status) pair"),
        "(a, sequent.StepStatus.success)",
    ),
    Bad(
        "requires-empty-or",
        _after_a(requires=seq.or_()),
        DefinitionError,
        ValueError,
        ("'b'", "or_()"),
        "at least one",
    ),
    Bad(
        "requires-unknown-name",
        _run(lambda c, f: f.add_step("a", func=c.step, requires=("ghost", S.success))),
        UnknownStepError,
        LookupError,
        ("'a'", "'ghost'"),
        "drop the requirement",
    ),
    Bad(
        "requires-child-from-outside",
        _from_outside,
        UnknownStepError,
        LookupError,
        ("'outside'", "'box_inner'"),
        "sibling",
    ),
    Bad(
        "requires-outer-step-from-child",
        _into_child,
        UnknownStepError,
        LookupError,
        ("'box_inner'", "'first'"),
        "sibling",
    ),
    Bad(
        "requires-step-of-another-flow",
        _other_flow,
        UnknownStepError,
        LookupError,
        ("'a'", "'x'", "another flow"),
    ),
    Bad(
        "requires-event-of-another-flow",
        _event_of_other_flow,
        DefinitionError,
        ValueError,
        ("'a'", "event of another flow"),
    ),
    Bad(
        "cycle-of-three",
        _run(_cycle),
        CycleError,
        ValueError,
        ("a -> ", "b", "c", "cycle"),
        "remove one",
    ),
    Bad(
        "cycle-self",
        _run(lambda c, f: f.add_step("a", func=c.step, requires=("a", S.success))),
        CycleError,
        ValueError,
        ("a -> a",),
    ),
    Bad(
        "cycle-inside-container-found-by-plan",
        _plan_only(_cycle_inside),
        CycleError,
        ValueError,
        ("box_x", "box_y", "container 'box'"),
    ),
    Bad(
        "event-without-requires",
        lambda c: c.flow().add_event(),
        DefinitionError,
        ValueError,
        ("add_event", "requires"),
    ),
    Bad(
        "event-unknown-argument",
        lambda c: c.flow().add_event(("a", S.success), when="now"),
        DefinitionTypeError,
        TypeError,
        ("add_event", "when"),
    ),
    # -- delay, timeout, retries ------------------------------------------------------------
    Bad(
        "delay-negative",
        lambda c: _leaf(c, delay=-1),
        DefinitionError,
        ValueError,
        ("'a'", "delay", "-1"),
    ),
    Bad(
        "delay-string",
        lambda c: _leaf(c, delay="1"),
        DefinitionTypeError,
        TypeError,
        ("'a'", "delay", "'1'"),
    ),
    Bad(
        "delay-infinite",
        lambda c: _leaf(c, delay=float("inf")),
        DefinitionError,
        ValueError,
        ("'a'", "delay", "inf"),
    ),
    Bad(
        "timeout-zero",
        lambda c: _leaf(c, timeout=0),
        DefinitionError,
        ValueError,
        ("'a'", "timeout", "0"),
        "None",
    ),
    Bad(
        "timeout-negative",
        lambda c: _leaf(c, timeout=-3),
        DefinitionError,
        ValueError,
        ("'a'", "timeout", "-3"),
    ),
    Bad(
        "timeout-nan",
        lambda c: _leaf(c, timeout=float("nan")),
        DefinitionError,
        ValueError,
        ("'a'", "timeout", "nan"),
    ),
    Bad(
        "timeout-list",
        lambda c: _leaf(c, timeout=[5]),
        DefinitionTypeError,
        TypeError,
        ("'a'", "timeout", "[5]"),
    ),
    Bad(
        "retries-negative",
        lambda c: _leaf(c, retries=-1),
        DefinitionError,
        ValueError,
        ("'a'", "retries", "-1"),
    ),
    Bad(
        "retries-float",
        lambda c: _leaf(c, retries=1.5),
        DefinitionTypeError,
        TypeError,
        ("'a'", "retries", "1.5"),
    ),
    Bad(
        "retries-bool",
        lambda c: _leaf(c, retries=True),
        DefinitionTypeError,
        TypeError,
        ("'a'", "retries", "True"),
    ),
    Bad(
        "retry-delay-negative",
        lambda c: _leaf(c, retry_delay=-0.5),
        DefinitionError,
        ValueError,
        ("'a'", "retry_delay", "-0.5"),
    ),
    # -- resources --------------------------------------------------------------------------
    Bad(
        "acquires-above-limit",
        lambda c: _leaf(c, acquires=[(_pool(2), 5)]),
        ResourceError,
        ValueError,
        ("'a'", "'gpus'", "5", "2"),
        "at most 2",
    ),
    Bad(
        "acquires-above-limit-in-parts",
        lambda c: (lambda pool: _leaf(c, acquires=[(pool, 2), (pool, 1)]))(_pool(2)),
        ResourceError,
        ValueError,
        ("'a'", "'gpus'", "3", "(2 + 1)", "2"),
        "at most 2 in all",
    ),
    Bad(
        "acquires-zero",
        lambda c: _leaf(c, acquires=[(_pool(2), 0)]),
        ResourceError,
        ValueError,
        ("'a'", "'gpus'", "0"),
    ),
    Bad(
        "acquires-string",
        lambda c: _leaf(c, acquires="gpus"),
        DefinitionTypeError,
        TypeError,
        ("'a'", "acquires", "'gpus'"),
    ),
    Bad(
        "acquires-pool-name-not-pool",
        lambda c: _leaf(c, acquires=[("gpus", 1)]),
        DefinitionTypeError,
        TypeError,
        ("'a'", "acquires", "('gpus', 1)"),
        "ResourcePool",
    ),
    Bad(
        "releases-int",
        lambda c: _leaf(c, releases=5),
        DefinitionTypeError,
        TypeError,
        ("'a'", "releases", "5"),
    ),
    Bad(
        "pool-limit-zero",
        lambda c: seq.ResourcePool("gpus", policy={"resource_limit": 0}),
        ResourceError,
        ValueError,
        ("'gpus'", "resource_limit", "0"),
    ),
    Bad(
        "pool-unknown-policy-key",
        lambda c: seq.ResourcePool("gpus", policy={"limit": 2}),
        ResourceError,
        ValueError,
        ("'gpus'", "'limit'"),
        "resource_limit",
    ),
    # -- recovery policy --------------------------------------------------------------------
    Bad(
        "recovery-key-string",
        lambda c: _leaf(c, recovery={"success": seq.StepReplay.skip}),
        DefinitionError,
        ValueError,
        ("'a'", "'success'"),
        "StepStatus.success",
    ),
    Bad(
        "recovery-value-string",
        lambda c: _leaf(c, recovery={S.failure: "skip"}),
        DefinitionTypeError,
        TypeError,
        ("'a'", "failure", "'skip'"),
        "StepReplay.skip",
    ),
    Bad(
        "recovery-list",
        lambda c: _leaf(c, recovery=[S.success]),
        DefinitionTypeError,
        TypeError,
        ("'a'", "recovery"),
    ),
    Bad(
        "recovery-key-complete",
        lambda c: _leaf(c, recovery={S.complete: seq.StepReplay.skip}),
        DefinitionError,
        ValueError,
        ("'a'", "complete"),
    ),
    # -- repeats ----------------------------------------------------------------------------
    Bad(
        "repeats-int",
        lambda c: c.flow().add_step("box", repeats=5),
        DefinitionTypeError,
        TypeError,
        ("'box'", "repeats", "5"),
        "range",
    ),
    Bad(
        "repeats-string",
        lambda c: c.flow().add_step("box", repeats="abc"),
        DefinitionTypeError,
        TypeError,
        ("'box'", "repeats", "'abc'"),
    ),
    Bad(
        "repeats-dict",
        lambda c: c.flow().add_step("box", repeats={"x": 1}),
        DefinitionTypeError,
        TypeError,
        ("'box'", "repeats"),
    ),
    Bad(
        "repeats-set",
        lambda c: c.flow().add_step("box", repeats={"alpha", "beta"}),
        DefinitionTypeError,
        TypeError,
        ("'box'", "repeats", "set", "order changes"),
        "sorted(",
    ),
    Bad(
        "repeats-on-a-leaf",
        _run(lambda c, f: f.add_step("a", func=c.step, repeats=[1, 2])),
        DefinitionError,
        ValueError,
        ("'a'", "repeats"),
        "child step",
    ),
    # -- per-step config and hosts ----------------------------------------------------------
    Bad(
        "step-config-flow-only-key",
        lambda c: _leaf(c, config={"logdir": "/tmp"}),
        ConfigError,
        ValueError,
        ("'a'", "logdir"),
        "Sequent",
    ),
    Bad(
        "step-config-bad-value",
        lambda c: _leaf(c, config={"max_concurrent": "many"}),
        ConfigError,
        ValueError,
        ("'a'", "max_concurrent", "'many'"),
    ),
    Bad(
        "step-config-not-a-mapping",
        lambda c: _leaf(c, config=["max_concurrent"]),
        ConfigError,
        ValueError,
        ("'a'", "config"),
    ),
    Bad(
        "hosts-int",
        lambda c: _leaf(c, hosts=5),
        DefinitionTypeError,
        TypeError,
        ("'a'", "hosts", "5"),
    ),
    Bad(
        "hosts-empty-name",
        lambda c: _leaf(c, hosts=["worker-1", ""]),
        DefinitionTypeError,
        TypeError,
        ("'a'", "hosts"),
    ),
    # -- running ----------------------------------------------------------------------------
    Bad(
        "max-loops-string",
        lambda c: _two(c)[0].run(max_loops="3"),
        DefinitionTypeError,
        TypeError,
        ("max_loops", "'3'"),
    ),
    Bad(
        "process-lock-in-kwargs",
        _process_with(lambda c: threading.Lock(), "kwargs"),
        NotSendableError,
        TypeError,
        ("'unsendable'", "'handle'", "lock"),
        "thread",
    ),
    Bad(
        "process-lock-as-repeats-item",
        _process_repeating(lambda c: threading.Lock()),
        NotSendableError,
        TypeError,
        ("'box'", "item 2 of its repeats", "lock"),
        "plain data",
    ),
    Bad(
        "process-open-file-in-args",
        _process_with(_open_file, "args"),
        NotSendableError,
        TypeError,
        ("'unsendable'", "argument 1", "not opened for reading"),
        "inside the step",
    ),
    # -- the store ------------------------------------------------------------------------
    Bad(
        "store-not-sqlite",
        _store_in_run,
        StoreError,
        ValueError,
        ("flow.run.db", "not a sequent store"),
        prepare=_not_sqlite,
    ),
    Bad(
        "store-another-apps-sqlite",
        _store_in_run,
        StoreError,
        ValueError,
        ("flow.run.db", "invoices"),
        prepare=_foreign_sqlite,
    ),
    Bad(
        "store-damaged",
        _store_in_run,
        StoreError,
        ValueError,
        ("flow.run.db",),
        prepare=_truncated_store,
    ),
    Bad(
        "store-is-a-directory",
        _store_in_run,
        StoreError,
        ValueError,
        ("flow.run.db", "directory"),
        prepare=lambda c: c.store.mkdir(),
    ),
    Bad(
        "recover-without-store-file",
        _recover(),
        RecoveryError,
        LookupError,
        ("flow.run.db", "'bad'"),
        "RunMode.restart",
    ),
    Bad(
        "recover-no-run-of-this-flow",
        _recover(),
        RecoveryError,
        LookupError,
        ("'bad'", "'other'"),
        prepare=lambda c: c.run_of_another_flow(),
    ),
    Bad(
        "recover-unknown-run-id",
        _recover(recovery_run="feedbeef"),
        RecoveryError,
        LookupError,
        ("'feedbeef'",),
        prepare=lambda c: c.run_of_another_flow(),
    ),
]


def _snapshot(folder: Path, name: str) -> dict[str, bytes]:
    """The store's bytes: the file itself and any write-ahead log with content.

    An empty ``-wal`` and the ``-shm`` index are SQLite's bookkeeping for an open connection,
    not data; a ``-wal`` with frames in it means something was written.
    """
    files = {}
    for path in sorted(folder.glob(name + "*")):
        if path.name.endswith("-shm") or (path.name.endswith("-wal") and not path.stat().st_size):
            continue
        files[path.name] = path.read_bytes() if path.is_file() else b"<directory>"
    return files


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_before_anything_happens(case: Bad, tmp_path: Path) -> None:
    tally("bad inputs tried")
    ctx = Ctx(tmp_path)
    if case.prepare is not None:
        case.prepare(ctx)
    before = _snapshot(ctx.tmp, ctx.store.name)
    logs_before = sorted(ctx.logdir.rglob("*")) if ctx.logdir.exists() else []
    try:
        with pytest.raises(case.error) as caught:
            case.act(ctx)
    finally:
        for flow in ctx.flows:
            flow.close()
        for handle in ctx.closing:
            handle.close()
    error = caught.value
    assert isinstance(error, SequentError)
    assert isinstance(error, case.builtin), f"{type(error).__mro__} lacks {case.builtin}"
    message = str(error)
    for part in case.culprit:
        assert part in message, f"{part!r} not named in: {message}"
    if case.fix is not None:
        assert case.fix in message, f"no fix {case.fix!r} in: {message}"
    assert ctx.calls == [], "a step ran"
    assert _snapshot(ctx.tmp, ctx.store.name) == before, "the store was written"
    logs_after = sorted(ctx.logdir.rglob("*")) if ctx.logdir.exists() else []
    assert logs_after == logs_before, "a run log was started"


# -- the command line -----------------------------------------------------------------------

FLOW_FILE = """
from pathlib import Path
import sequent as seq

HERE = Path(__file__).parent

def touch():
    (HERE / "ran").touch()

flow = seq.Sequent(name="cli", store=str(HERE / "flow.run.db"), executor="serial",
                   config={"logdir": str(HERE / "logs")})
flow.add_step("a", func=touch)
"""

CYCLE_FILE = (
    FLOW_FILE
    + """
flow.add_step("b", func=touch, requires=("c", seq.StepStatus.success))
flow.add_step("c", func=touch, requires=("b", seq.StepStatus.success))
"""
)

RAISING_FILE = FLOW_FILE + "\nflow.add_step('d', func=touch, delay=-2)\n"


@dataclass(frozen=True)
class BadCommand:
    """One misuse of ``sequent``: exit status 2 with ``culprit`` on standard error."""

    id: str
    args: tuple[str, ...]
    culprit: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = (("flow.py", FLOW_FILE),)
    prepare: Callable[[Path], Any] | None = None


def _cli_store_with_a_run(folder: Path) -> None:
    from click.testing import CliRunner

    from sequent.cli import cli

    result = CliRunner().invoke(cli, ["run", str(folder / "flow.py")])
    assert result.exit_code == 0, result.output
    (folder / "ran").unlink()


def _linked_logdir(folder: Path) -> None:
    (folder / "real").mkdir()
    (folder / "linked").symlink_to(folder / "real", target_is_directory=True)


COMMANDS = [
    BadCommand("unknown-command", ("frobnicate",), ("frobnicate",)),
    BadCommand("run-without-file", ("run",), ("FILE",)),
    BadCommand("run-missing-file", ("run", "{tmp}/missing.py"), ("missing.py",)),
    BadCommand("run-a-directory", ("run", "{tmp}"), ("is not a file",)),
    BadCommand("run-unknown-object", ("run", "{tmp}/flow.py:nothing"), ("'nothing'",)),
    BadCommand(
        "run-missing-scheduler-file",
        ("run", "{tmp}/flow.py", "--scheduler-file", "{tmp}/none.json"),
        ("--scheduler-file", "none.json", "does not exist"),
    ),
    BadCommand(
        "run-malformed-address",
        ("run", "{tmp}/flow.py", "--address", "notanaddress:::"),
        ("--address", "'notanaddress:::'", "tcp://HOST:PORT"),
    ),
    BadCommand("run-object-not-a-flow", ("run", "{tmp}/flow.py:HERE"), ("HERE", "not a Sequent")),
    BadCommand(
        "run-file-without-flow",
        ("run", "{tmp}/empty.py"),
        ("no flow found", "empty.py"),
        files=(("empty.py", "x = 1\n"),),
    ),
    BadCommand(
        "run-syntax-error",
        ("run", "{tmp}/broken.py"),
        ("broken.py", "SyntaxError"),
        files=(("broken.py", "def (:\n"),),
    ),
    BadCommand(
        "run-flow-that-does-not-build",
        ("run", "{tmp}/flow.py"),
        ("'d'", "delay", "-2"),
        files=(("flow.py", RAISING_FILE),),
    ),
    BadCommand(
        "run-cycle", ("run", "{tmp}/flow.py"), ("cycle", "b", "c"), files=(("flow.py", CYCLE_FILE),)
    ),
    BadCommand("run-unknown-executor", ("run", "{tmp}/flow.py", "--executor", "gpu"), ("'gpu'",)),
    BadCommand(
        "run-max-loops-not-a-number",
        ("run", "{tmp}/flow.py", "--max-loops", "many"),
        ("'many'",),
    ),
    BadCommand(
        "run-store-not-a-store",
        ("run", "{tmp}/flow.py", "--store", "{tmp}/notes.txt"),
        ("notes.txt", "not a sequent store"),
        prepare=lambda folder: (folder / "notes.txt").write_text("hello\n"),
    ),
    BadCommand(
        "recover-without-store",
        ("recover", "{tmp}/flow.py"),
        ("nothing to recover", "flow.run.db"),
    ),
    BadCommand(
        "recover-unknown-run-id",
        ("recover", "{tmp}/flow.py", "--run-id", "feedbeef"),
        ("'feedbeef'",),
        prepare=_cli_store_with_a_run,
    ),
    BadCommand(
        "plan-recover-unknown-run-id",
        ("plan", "{tmp}/flow.py", "--run-id", "feedbeef"),
        ("'feedbeef'",),
        prepare=_cli_store_with_a_run,
    ),
    BadCommand(
        "graph-unknown-format",
        ("graph", "{tmp}/flow.py", "--format", "gif"),
        ("'gif'",),
    ),
    BadCommand("runs-missing-store", ("runs", "--store", "{tmp}/nope.run.db"), ("nope.run.db",)),
    BadCommand(
        "runs-store-not-a-store",
        ("runs", "--store", "{tmp}/notes.txt"),
        ("notes.txt", "not a sequent store"),
        prepare=lambda folder: (folder / "notes.txt").write_text("hello\n"),
    ),
    BadCommand("show-without-store", ("show", "feedbeef"), ("--store",)),
    BadCommand(
        "show-unknown-run-id",
        ("show", "feedbeef", "--store", "{tmp}/flow.run.db"),
        ("'feedbeef'",),
        prepare=_cli_store_with_a_run,
    ),
    BadCommand(
        "report-unknown-run-id",
        ("report", "feedbeef", "--store", "{tmp}/flow.run.db"),
        ("'feedbeef'",),
        prepare=_cli_store_with_a_run,
    ),
    BadCommand(
        "report-missing-store",
        ("report", "feedbeef", "--store", "{tmp}/nope.run.db"),
        ("nope.run.db",),
    ),
    BadCommand(
        "run-logdir-a-symlink",
        ("run", "{tmp}/flow.py", "--logdir", "{tmp}/linked"),
        ("linked", "symbolic link"),
        prepare=_linked_logdir,
    ),
    BadCommand(
        "report-output-in-a-missing-folder",
        ("report", "latest", "--store", "{tmp}/flow.run.db", "-o", "{tmp}/missing/x.html"),
        ("-o", "missing/x.html", "does not exist", "mkdir -p"),
        prepare=_cli_store_with_a_run,
    ),
    BadCommand(
        "graph-output-in-a-missing-folder",
        ("graph", "{tmp}/flow.py", "-o", "{tmp}/missing/x.dot"),
        ("-o", "missing/x.dot", "does not exist", "mkdir -p"),
    ),
    BadCommand(
        "graph-unknown-run-id",
        ("graph", "{tmp}/flow.py", "--run-id", "feedbeef"),
        ("'feedbeef'",),
        prepare=_cli_store_with_a_run,
    ),
]


@pytest.mark.parametrize("case", COMMANDS, ids=[case.id for case in COMMANDS])
def test_command_misuse_exits_2_and_writes_nothing(
    case: BadCommand, tmp_path: Path, empty_cwd: Path
) -> None:
    from click.testing import CliRunner

    from sequent.cli import cli

    tally("bad inputs tried")
    for name, text in case.files:
        (tmp_path / name).write_text(text, encoding="utf-8")
    if case.prepare is not None:
        case.prepare(tmp_path)
    before = _snapshot(tmp_path, "")  # every file: a misuse must not create one either
    args = [arg.format(tmp=tmp_path) for arg in case.args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    for part in case.culprit:
        assert part in result.stderr, f"{part!r} not named on stderr: {result.stderr}"
    assert not (tmp_path / "ran").exists(), "a step ran"
    assert _snapshot(tmp_path, "") == before, "a file was written"
