"""Finding the store a command reads and the run it names, as the command line words them.

A store is, in this order: the one given (``--store PATH``), the one a flow file records into,
``$SEQUENT_STORE``, the single ``*.run.db`` in the current folder, or, where the current folder
holds none, the single ``*.run.db`` one folder below it (``sequent run examples/pitch.py``
records into ``examples/pitch.run.db``, which ``sequent status latest`` then finds from the
folder the run was started in). A run is named by its full id, a prefix of one that no other
run shares, or ``latest``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import RunReferenceError, StoreNotFoundError

#: The run reference that means the newest run (of one flow, where the store holds several).
LATEST = "latest"
#: The environment variable naming a store when no --store is given.
STORE_VARIABLE = "SEQUENT_STORE"
_SHOWN = 5


def find_store(
    given: str | None = None,
    flow_store: str | None = None,
    environ: Mapping[str, str] | None = None,
    folder: str | os.PathLike[str] | None = None,
) -> str:
    """The path of the store to read: ``given``, ``flow_store``, $SEQUENT_STORE, or a search.

    ``flow_store`` is the store of a flow file named on the command line. The search takes the
    single ``*.run.db`` in ``folder`` (default: the current folder), else the single one a
    folder below. Raises ``StoreNotFoundError`` naming what was looked at and how to choose.
    """
    if given:
        return given
    if flow_store:
        return flow_store
    environ = os.environ if environ is None else environ
    if environ.get(STORE_VARIABLE):
        return environ[STORE_VARIABLE]
    here = Path.cwd() if folder is None else Path(folder)
    for pattern in ("*.run.db", "*/*.run.db"):
        found = sorted(str(p) for p in here.glob(pattern) if p.is_file())
        if len(found) == 1:
            return found[0]
        if found:
            listed = ", ".join(found[:_SHOWN]) + (" ..." if len(found) > _SHOWN else "")
            raise StoreNotFoundError(
                f"several stores here ({listed}); choose one with --store PATH, name the flow "
                f"file whose store to read, or set {STORE_VARIABLE}"
            )
    raise StoreNotFoundError(
        f"no store given and none found: no --store, no flow file, no {STORE_VARIABLE}, and no "
        f"*.run.db in {str(here)!r} or a folder below it; pass --store PATH (or the flow file), "
        f"or run the command from the folder that holds the store"
    )


def resolve_run(store: Any, reference: str, flow_name: str | None = None) -> str:
    """The full id of the run ``reference`` names in ``store`` (of ``flow_name`` if given).

    ``reference`` is a run id, a unique prefix of one, or ``latest``. Raises
    ``RunReferenceError`` for no match, an ambiguous prefix, or ``latest`` in a store holding
    several flows without ``flow_name``.
    """
    runs = store.runs(flow_name)
    where = f"the store {store.path!r}" + (f" (flow {flow_name!r})" if flow_name else "")
    if not runs:
        raise RunReferenceError(
            f"{where} holds no runs, so {reference!r} names none; run a flow with "
            f"`sequent run FILE` first, or check --store and --flow"
        )
    if reference == LATEST:
        names = sorted({run["flow_name"] for run in runs})
        if len(names) > 1:
            raise RunReferenceError(
                f"'latest' is ambiguous: {where} holds runs of several flows "
                f"({', '.join(map(repr, names))}); add --flow NAME"
            )
        return str(runs[0]["run_id"])
    ids = [str(run["run_id"]) for run in runs]
    if reference in ids:
        return reference
    matches = [run_id for run_id in ids if run_id.startswith(reference)] if reference else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise RunReferenceError(
            f"run prefix {reference!r} is ambiguous in {where}: it starts "
            f"{', '.join(matches[:_SHOWN])}{' ...' if len(matches) > _SHOWN else ''}; give more "
            f"of the id"
        )
    raise RunReferenceError(
        f"{where} holds no run with id {reference!r}; its latest runs are "
        f"{', '.join(ids[:_SHOWN])}. Give one of those (or a prefix of one, or 'latest'); "
        f"`sequent runs` lists them all"
    )


__all__ = ["LATEST", "STORE_VARIABLE", "find_store", "resolve_run"]
