"""Map a function over HEALPix partitions on a Dask cluster, results back in partition order.

The caller writes what comes back (one writer, deterministic bytes), so results are yielded in
the order of the inputs, not as they finish; at most ``in_flight`` tasks are submitted and not
yet consumed, so memory stays flat however many partitions there are.

:class:`ClusterMapper` is the *mapper* the load steps take (``mapper(function, tasks)``, e.g.
:meth:`warehouse.store.batch.UpsertBatch.commit`): it connects to the cluster the first time it
runs tasks, so a command with nothing to distribute starts no cluster.

>>> list(map_in_order(None, abs, [-2, 1, -3]))  # no client: this process, in order
[2, 1, 3]
>>> with cluster_mapper(None) as mapper:  # no scheduler configured: no mapper
...     print(mapper)
None
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from typing import Any, TypeVar

from warehouse.compute.cluster import check_address, dask_client, n_workers
from warehouse.errors import ComputeError, WarehouseError

__all__ = ["ClusterMapper", "cluster_mapper", "map_in_order"]

T = TypeVar("T")
R = TypeVar("R")


def map_in_order(
    client: Any,
    function: Callable[[T], R],
    items: Iterable[T],
    *,
    in_flight: int | None = None,
) -> Iterator[R]:
    """``function(item)`` for every item, run on ``client``'s workers (None: here), yielded in
    the order of ``items``.

    ``function`` and the items must pickle (a module-level function, or a
    :func:`functools.partial` of one). A worker's exception is raised here when its result is
    reached; the tasks still queued are cancelled. The cluster failing (workers killed, the
    scheduler gone) and a worker missing a file are :class:`ComputeError` (one line).
    """
    if client is None:
        for item in items:
            yield function(item)
        return
    limit = in_flight if in_flight is not None else 2 * n_workers(client)
    limit = max(1, limit)
    pending: deque[Any] = deque()
    try:
        for item in items:
            pending.append(client.submit(function, item, pure=False))
            if len(pending) >= limit:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:
        if pending:
            client.cancel(list(pending))


def _result(future: Any) -> Any:
    try:
        return future.result()
    except WarehouseError:
        raise
    except FileNotFoundError as exc:
        raise ComputeError(
            f"a Dask worker cannot find {exc.filename or exc}: the workers must see the "
            "warehouse at the same path as this machine (a shared filesystem)."
        ) from None
    except (CancelledError, OSError, TimeoutError) as exc:  # scheduler or connection lost
        raise _lost(exc) from None
    except Exception as exc:
        if type(exc).__module__.partition(".")[0] == "distributed":  # e.g. KilledWorker
            raise _lost(exc) from None
        raise


def _lost(exc: BaseException) -> ComputeError:
    first = (str(exc).strip().splitlines() or [""])[0]
    return ComputeError(
        f"the Dask cluster failed during the command ({type(exc).__name__}: {first}); what it "
        "was computing is not committed. Rerun once the cluster is back (a rerun resumes), or "
        "without --dask."
    )


class ClusterMapper:
    """``mapper(function, tasks)``: :func:`map_in_order` on the Dask cluster at ``address``,
    connected (``local:N``: started) on the first call and closed by :func:`cluster_mapper`."""

    def __init__(self, address: str, stack: contextlib.ExitStack, echo: Callable[[str], None]):
        self.address = address
        self._stack = stack
        self._echo = echo
        self._client: Any = None
        self.calls = 0  # times it was given tasks

    def client(self) -> Any:
        """The connected client (connecting now if need be)."""
        if self._client is None:
            self._client = self._stack.enter_context(dask_client(self.address))
            threads = n_workers(self._client)
            self._echo(f"on the Dask cluster {self.address} ({threads} worker thread(s))")
        return self._client

    def __call__(self, function: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        self.calls += 1
        return map_in_order(self.client(), function, items)


@contextlib.contextmanager
def cluster_mapper(
    address: str | None, echo: Callable[[str], None] = lambda _msg: None
) -> Iterator[ClusterMapper | None]:
    """A :class:`ClusterMapper` on ``address`` for the ``with`` block (None: no Dask, None).
    A malformed ``local:N`` or a missing ``distributed`` fails here, before any work."""
    if address is None:
        yield None
        return
    check_address(address)
    with contextlib.ExitStack() as stack:
        yield ClusterMapper(address, stack, echo)
