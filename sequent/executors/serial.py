"""The serial backend (alias ``invoke``): every step runs in the calling thread."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from .base import ExecutorBackend


class InlineExecutor(Executor):
    """A ``concurrent.futures.Executor`` that runs each call at once, in the submitting thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


class SerialBackend(ExecutorBackend):
    """Steps run one at a time in the thread that called ``run()``; timeouts cannot stop them."""

    name = "serial"

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()  # one step at a time whatever ``max_workers`` says

    def create(self) -> Executor:
        return InlineExecutor()
