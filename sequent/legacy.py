"""What scripts written for the original sequent 3.1.x pass that has no other home here.

Arguments the original took for jobs this project does differently (SSH hosts, shared
databases, importing modules on remote hosts) are accepted and ignored with one warning naming
them; a step with neither func nor children runs ``placeholder``, as the original ran it.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import DefinitionTypeError, StoreError


class SequentWarning(UserWarning):
    """Something sequent accepted but ignores or treats differently; the message says what."""


#: ``Sequent(...)``/``run(...)`` arguments of the original with no job here (eventor's SSH
#: hosts and agents, shared in-memory state, imports for remote hosts).
FLOW_ARGUMENTS = frozenset(
    {"host", "remotes", "memory", "import_module", "import_file", "listener_q"}
)

#: ``add_step`` arguments of the original with no job here (steps are sent by value).
STEP_ARGUMENTS = frozenset({"import_module", "import_file", "resources"})

WHY = (
    "they served the original's SSH hosts, shared databases and logging setup, which sequent "
    "does differently (see docs/migration.md)"
)


def warn_ignored(where: str, stacklevel: int = 3, **groups: Iterable[str]) -> None:
    """Warn once that the names in ``groups`` (given in ``where``) were accepted and are ignored.

    Each keyword is a label (``arguments``, ``config_keys``) for the names under it.
    """
    parts = [
        f"{label.replace('_', ' ')} {', '.join(sorted(set(names)))}"
        for label, names in groups.items()
        if names
    ]
    if parts:
        warnings.warn(
            f"{where}: ignoring {' and '.join(parts)}, which only the original sequent 3.1.x "
            f"used; {WHY}; drop them to silence this warning",
            SequentWarning,
            stacklevel=stacklevel,
        )


def split_arguments(
    given: Mapping[str, Any], legacy: frozenset[str], known: Iterable[str], call: str
) -> list[str]:
    """The names in ``given`` that are the original's ``legacy`` ones, sorted.

    Raises ``DefinitionTypeError`` for any other name, with the closest of ``known`` as a hint.
    """
    unknown = sorted(name for name in given if name not in legacy)
    if unknown:
        choices = sorted(known)
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, choices, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise DefinitionTypeError(
            f"{call} got unknown argument {', '.join(hints)}; it takes {', '.join(choices)}"
        )
    return sorted(given)


def placeholder() -> None:
    """The body of a step added with neither func nor children: it does nothing and succeeds."""


def check_database_store(store: str, databases: Mapping[str, Any]) -> None:
    """Refuse a ``store`` that names an entry of the original's ``DATABASES`` configuration.

    The original looked ``store`` up there (``store='pgdb2'``); here it is a file path, and a
    file of that name would be created silently. Raises ``StoreError`` saying what to pass.
    """
    entry = databases.get(store) if not os.path.dirname(store) else None
    if not isinstance(entry, Mapping):
        return
    dialect = entry.get("dialect", "an unknown dialect")
    path = entry.get("database") or entry.get("file")
    hint = f" (this entry's file is {path!r})" if dialect == "sqlite" and path else ""
    raise StoreError(
        f"store {store!r} names the {dialect} database entry {store!r} of config DATABASES; "
        f"sequent keeps its runs in an SQLite file of its own, so pass store= a file path"
        f"{hint}, or leave it '' for <script>.run.db beside the script"
    )
