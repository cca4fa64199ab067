"""``gwh materialise``: the marts rebuilt now, at any size, here or on a Dask cluster."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from warehouse.cleanup import collect_garbage
from warehouse.compute.cluster import dask_client, resolve_address
from warehouse.compute.mapping import map_in_order
from warehouse.errors import UnavailableViewError
from warehouse.explain import unavailable_in
from warehouse.marts.build import VIEW, materialise

if TYPE_CHECKING:
    from warehouse.core import Warehouse


def materialise_command(
    wh: Warehouse, dask: str | None = None, echo: Callable[[str], None] = print
) -> None:
    """Materialise ``ml_objects`` for the committed state (e.g. after editing
    ``warehouse.toml``), whatever the size of ``hsc_forced``; ``dask``: the partitions run on that
    cluster (``local:N`` or a scheduler address). What it did is echoed (:func:`materialise` prints
    the summary), so nothing is returned for the command runner to print again."""
    address = resolve_address(dask, wh.config.dask)
    with wh.reading(), wh.connect() as con:
        unavailable = unavailable_in(con, VIEW)
    if unavailable is not None:  # not "nothing to do": it cannot be done until loads bring it
        raise UnavailableViewError(f"cannot materialise: {unavailable}")
    with wh.writing(), contextlib.ExitStack() as stack:
        client = None if address is None else stack.enter_context(dask_client(address))
        mapper = None if client is None else functools.partial(map_in_order, client)
        result = materialise(wh, mapper, force=True, echo=echo)
        if result is None:
            echo(f"{VIEW}: nothing to do (its copy is current)")
        else:
            collect_garbage(wh)  # the copy it supersedes, if no reader holds it
    return None
