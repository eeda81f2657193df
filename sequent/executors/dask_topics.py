"""Dask event topics shared by every sequent backend on one client.

A Dask client keeps one handler per topic, so two backends on one client (a client given to
several ``DaskExecutor``s, as a long-lived application or a test session does) would take each
other's events: the steps of the one subscribed first would never hear of their start or their
last log lines. Backends subscribe here instead; the one handler on the client hands each event
to every backend subscribed to its topic there, and each ignores the steps it does not run.

Mutates the client's subscriptions and this module's table of handlers.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("sequent")

_lock = threading.Lock()
#: client -> topic -> the backends' handlers, in the order they subscribed
_handlers: weakref.WeakKeyDictionary[Any, dict[str, list[Callable[[Any], None]]]] = (
    weakref.WeakKeyDictionary()
)


def subscribe(client: Any, topic: str, handler: Callable[[Any], None]) -> None:
    """Hand ``topic``'s events on ``client`` to ``handler`` too."""
    with _lock:
        topics = _handlers.setdefault(client, {})
        first = topic not in topics
        topics.setdefault(topic, []).append(handler)
    if first:
        client.subscribe_topic(topic, lambda event: _dispatch(client, topic, event))


def unsubscribe(client: Any, topic: str, handler: Callable[[Any], None]) -> None:
    """Stop handing ``topic``'s events to ``handler``; the last one gone unsubscribes."""
    with _lock:
        topics = _handlers.get(client, {})
        handlers = topics.get(topic, [])
        if handler in handlers:
            handlers.remove(handler)
        last = topic in topics and not handlers
        if last:
            del topics[topic]
    if last:
        client.unsubscribe_topic(topic)


def _dispatch(client: Any, topic: str, event: Any) -> None:
    with _lock:
        handlers = list(_handlers.get(client, {}).get(topic, ()))
    for handler in handlers:
        try:
            handler(event)
        except Exception:  # one backend's trouble must not keep the event from the others
            log.exception("sequent: handling a Dask event of topic %r failed", topic)
