"""How the Dask backend reaches its cluster, and the check that it can, before a run is written.

In this order of precedence: a ``client`` you made; a ``cluster`` object (any ``distributed``
cluster: ``LocalCluster``, dask-jobqueue's ``SLURMCluster``, dask-kubernetes' ``KubeCluster``,
...); a scheduler ``address`` or a ``scheduler_file``; Dask's own ``scheduler-address`` setting
(``DASK_SCHEDULER_ADDRESS``); else a private ``LocalCluster`` on 127.0.0.1. ``adapt`` (True, a
``(minimum, maximum)`` pair or ``Cluster.adapt`` keywords) makes a cluster object, or the private
one, scale with the load.

Mutates only the cluster it starts itself (and the scaling of a cluster it was asked to adapt).
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from ..errors import ClusterError, ExecutorError

CONNECT_TIMEOUT = 10.0


@attrs.frozen
class Connection:
    """Where to find the cluster (the fields of ``DaskExecutor`` that say so)."""

    address: str | None = None
    scheduler_file: str | None = None
    security: Any = None
    cluster: Any = None
    adapt: Any = None
    n_workers: int = 1
    cluster_options: dict[str, Any] = attrs.field(factory=dict)
    timeout: float = CONNECT_TIMEOUT

    def check(self, client: Any) -> None:
        """Raise ``ExecutorError`` for options that cannot go together."""
        given = [
            name
            for name, value in (
                ("address", self.address),
                ("scheduler_file", self.scheduler_file),
                ("client", client),
                ("cluster", self.cluster),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ExecutorError(
                f"DaskExecutor takes one of address=, scheduler_file=, client= or cluster=, "
                f"got {' and '.join(given)}; drop all but one"
            )
        if self.adapt is not None and (self.address or self.scheduler_file or client):
            raise ExecutorError(
                "DaskExecutor(adapt=...) scales a cluster object (cluster=...) or sequent's own "
                "local cluster; a scheduler reached by address is scaled by whoever runs it"
            )
        if self.address is not None:
            _check_address(self.address)
        if self.scheduler_file is not None and not os.path.isfile(self.scheduler_file):
            raise ClusterError(
                f"the Dask scheduler file {self.scheduler_file!r} does not exist; start the "
                f"scheduler with --scheduler-file {self.scheduler_file} or fix the path"
            )

    def where(self) -> str:
        """The cluster in words, for log lines and errors."""
        if self.cluster is not None:
            return f"the cluster {type(self.cluster).__name__}"
        if self.scheduler_file:
            return f"the scheduler of {self.scheduler_file}"
        address = self.address or _configured_address()
        if address:
            return f"the scheduler at {address}"
        return "a local cluster on 127.0.0.1"


def _check_address(address: Any) -> None:
    """Raise ``ClusterError`` for an address Dask cannot parse (before any connection)."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except (TypeError, ValueError) as exc:
        raise ClusterError(
            f"{address!r} is not a Dask scheduler address ({exc}); give tcp://HOST:PORT, as "
            f"the scheduler prints it"
        ) from None


def _configured_address() -> str | None:
    import dask

    value = dask.config.get("scheduler-address", None) or dask.config.get("scheduler_address", None)
    return str(value) if value else None


def _security(value: Any) -> Any:
    if value is None or value is False:
        return None
    import distributed

    if value is True:
        return distributed.Security.temporary()
    if isinstance(value, dict):
        return distributed.Security(**value)
    return value


def _adapt(cluster: Any, adapt: Any) -> None:
    if adapt is None or adapt is False:
        return
    if adapt is True:
        cluster.adapt()
    elif isinstance(adapt, dict):
        cluster.adapt(**adapt)
    elif isinstance(adapt, (tuple, list)) and len(adapt) == 2:
        cluster.adapt(minimum=adapt[0], maximum=adapt[1])
    else:
        raise ExecutorError(
            f"DaskExecutor(adapt={adapt!r}): give True, (minimum, maximum) or a dict of "
            f"Cluster.adapt keywords"
        )


def _local_cluster(connection: Connection) -> Any:
    import distributed

    options = {
        "n_workers": 0 if connection.adapt else connection.n_workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",  # a free local port, no clash
        "scheduler_kwargs": {"allowed_failures": 0},
        **connection.cluster_options,
    }
    return distributed.LocalCluster(**options)


def open_client(connection: Connection) -> tuple[Any, Any]:
    """A connected client, and the local cluster started for it (None when not ours).

    Raises ``ClusterError`` when the scheduler cannot be reached within the timeout, or when it
    has no worker and none will be added (no ``adapt``).
    """
    import distributed

    own = None
    security = _security(connection.security)
    target: Any = connection.cluster
    address = connection.address
    if target is None and connection.scheduler_file is None:
        address = address or _configured_address()
        if address is None:
            own = target = _local_cluster(connection)
    try:
        if target is not None:
            _adapt(target, connection.adapt)
            client = distributed.Client(target, set_as_default=False)
        elif connection.scheduler_file is not None:
            client = distributed.Client(
                scheduler_file=connection.scheduler_file,
                security=security,
                timeout=connection.timeout,
                set_as_default=False,
            )
        else:
            client = distributed.Client(
                address, security=security, timeout=connection.timeout, set_as_default=False
            )
    except (OSError, TimeoutError) as exc:
        if own is not None:
            own.close()
        raise ClusterError(
            f"cannot reach {connection.where()} ({type(exc).__name__}: {exc}); start the "
            f"scheduler, check the address (tcp://HOST:PORT), the network and the TLS settings"
        ) from exc
    if connection.adapt is None:
        _wait_for_workers(client, connection)
    return client, own


def _wait_for_workers(client: Any, connection: Connection) -> None:
    try:
        client.wait_for_workers(1, timeout=connection.timeout)
    except (TimeoutError, OSError) as exc:
        client.close()
        raise ClusterError(
            f"{connection.where()} has no worker (none joined within {connection.timeout:g} s); "
            f"start a worker (dask worker ADDRESS) or give DaskExecutor(adapt=...)"
        ) from exc
