"""Map a function over HEALPix partitions on a Dask cluster, results back in partition order.

The caller writes what comes back (one writer, deterministic bytes), so results are yielded in
the order of the inputs, not as they finish; at most ``in_flight`` tasks are submitted and not
yet consumed, so memory stays flat however many partitions there are.

>>> list(map_in_order(None, abs, [-2, 1, -3]))  # no client: this process, in order
[2, 1, 3]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from warehouse.compute.cluster import n_workers

__all__ = ["map_in_order"]

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
    reached; the tasks still queued are cancelled.
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
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if pending:
            client.cancel(list(pending))
