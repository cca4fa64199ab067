"""Which Dask scheduler a command uses, and a client connected to it for the command's length.

The scheduler comes from ``--dask ADDRESS``, else ``$GWH_DASK_SCHEDULER``, else ``[compute] dask``
in ``warehouse.toml``, else none (the command runs on this machine alone); ``none`` in any of
them runs it here alone too, so ``--dask none`` overrides the other two. ``local:N`` starts a
:class:`distributed.LocalCluster` of N single-threaded worker processes, closed when the command
ends; anything else is a scheduler address as :class:`distributed.Client` takes it
(``tcp://host:8786``), e.g. of a SLURM (dask-jobqueue) or Kubernetes (dask-kubernetes) cluster
whose workers see the warehouse on a shared filesystem.

>>> resolve_address("local:2", None)
'local:2'
>>> resolve_address(None, None, environ={})  # nothing configured: single machine
>>> resolve_address("none", None, environ={"GWH_DASK_SCHEDULER": "tcp://sched:8786"})
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from warehouse.compute.warm import warm
from warehouse.config import LOCAL_CLUSTER, dask_address_problem
from warehouse.errors import ComputeError

try:  # an optional dependency: pip install -e '.[dask]'
    import dask
    import distributed
except ImportError:  # pragma: no cover - depends on the installation
    distributed = None  # type: ignore[assignment]

__all__ = [
    "CONNECT_TIMEOUT_S",
    "ENV_VAR",
    "NO_DASK",
    "check_address",
    "dask_client",
    "n_workers",
    "resolve_address",
]

ENV_VAR = "GWH_DASK_SCHEDULER"
NO_DASK = "none"
"""The address that means this machine alone, whatever the environment or warehouse.toml say."""
CONNECT_TIMEOUT_S = 5.0
"""How long a client waits for a scheduler before the command fails with a one-line error."""

WORKER_WAIT_S = 60.0
"""How long a command waits for a worker to join a scheduler that has none, then fails."""

_SOURCES = "(--dask, $GWH_DASK_SCHEDULER or [compute] dask)"
_INSTALL = "pip install -e '.[dask]' (or pip install distributed)"


def resolve_address(
    option: str | None, configured: str | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The scheduler to use: ``option`` (``--dask``) > ``$GWH_DASK_SCHEDULER`` > ``configured``
    (``[compute] dask``) > None (no Dask). Blank values count as not given; the first given
    value ``none`` means no Dask (``--dask none``: a local run whatever is configured)."""
    env = os.environ if environ is None else environ
    for value in (option, env.get(ENV_VAR), configured):
        if value is not None and value.strip():
            return None if value.strip().lower() == NO_DASK else value.strip()
    return None


def _local_workers(address: str) -> int | None:
    if not address.startswith("local"):
        return None
    if problem := dask_address_problem(address):
        raise ComputeError(f"Dask scheduler {address!r} {_SOURCES}{problem}")
    m = LOCAL_CLUSTER.match(address)
    assert m is not None
    return int(m.group(1))


def _require_distributed() -> Any:
    if distributed is None:
        raise ComputeError(f"--dask needs the distributed package: {_INSTALL}")
    return distributed


def check_address(address: str) -> None:
    """Raise :class:`ComputeError` now if ``--dask address`` cannot work here: distributed is
    not installed, or ``local:N`` is malformed (so a long command fails before it starts)."""
    _require_distributed()
    if problem := dask_address_problem(address):
        raise ComputeError(f"Dask scheduler {address!r} {_SOURCES}{problem}")


@contextlib.contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A :class:`distributed.Client` on ``address`` for the ``with`` block.

    ``local:N`` starts (and afterwards closes) a local cluster of N worker processes with one
    thread each; any other value must name a running scheduler, reached within
    :data:`CONNECT_TIMEOUT_S` seconds, or a :class:`ComputeError` says so in one line. Every
    worker starts importing what the tasks need at once (:mod:`warehouse.compute.warm`).
    """
    dist = _require_distributed()
    workers = _local_workers(address)
    if workers is not None:
        with _quiet_workers():
            cluster = dist.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                # any free port: the scheduler's HTTP server would otherwise take 8787 and warn
                # when another cluster on this machine already has it
                dashboard_address=":0",
                silence_logs=QUIET_LEVEL,
            )
            try:
                with dist.Client(cluster) as client:
                    warming = _warm_up(client)  # noqa: F841  (held: a dropped future may be lost)
                    yield client
            finally:
                cluster.close()
        return
    try:
        client = dist.Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ComputeError(
            f"cannot reach a Dask scheduler at {address!r} ({first}). Start one (`dask scheduler`"
            " and `dask worker ADDRESS` on the nodes), check the address, or use --dask local:N "
            "to run a cluster on this machine (--dask none: no cluster)."
        ) from None
    try:
        if not client.scheduler_info()["workers"]:
            _wait_for_workers(client, address)
        warming = _warm_up(client)  # noqa: F841
        yield client
    finally:
        client.close()


QUIET_LEVEL = logging.CRITICAL
"""Records of distributed's loggers a local cluster still prints. Its processes' records are
for whoever runs the cluster, not for a ``gwh`` user: with more workers than cores, closing
printed a nanny "Worker process still alive after 4.0 seconds, killing" per worker and, now and
then, a worker's "Failed to communicate with scheduler during heartbeat" traceback. What goes
wrong reaches the command as an exception (a task's error, ``KilledWorker``), which it says in
one line (:mod:`warehouse.compute.mapping`)."""


@contextlib.contextmanager
def _quiet_workers() -> Iterator[None]:
    """:data:`QUIET_LEVEL` in the worker processes a :class:`distributed.LocalCluster` started
    in the block spawns (now, or later when a nanny restarts one): ``silence_logs`` sets it on
    this process's handlers and the workers' nanny logger only, so the workers' own
    ``distributed`` logging is configured as distributed reads it at import, from ``$DASK_*``
    (``logging.distributed``), which nannies set before they spawn a worker
    (``distributed.nanny.pre-spawn-environ``). This process's environment is left as it was."""
    name = "DASK_LOGGING__DISTRIBUTED"
    before = os.environ.get(name)
    level = logging.getLevelName(QUIET_LEVEL).lower()
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{name}": level}):
            yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _wait_for_workers(client: Any, address: str) -> None:
    """A scheduler without workers would hold every task forever: wait for one to join (a
    batch system may still be starting them), else stop in one line."""
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise ComputeError(
            f"the Dask scheduler at {address!r} has no workers (none joined within "
            f"{WORKER_WAIT_S:.0f} s): start them with `dask worker {address}`, or use "
            "--dask local:N to run a cluster on this machine (--dask none: no cluster)."
        ) from None


def _warm_up(client: Any) -> list[Any]:
    """One :func:`~warehouse.compute.warm.warm` task on each worker the scheduler has now."""
    return [
        client.submit(warm, workers=[address], allow_other_workers=False, pure=False)
        for address in client.scheduler_info()["workers"]
    ]


def n_workers(client: Any) -> int:
    """Worker threads the scheduler has now (at least 1)."""
    return max(1, sum(client.nthreads().values()))
