"""``gwh export --dask``: the export's catalog rows computed per partition on the workers.

Each worker runs the export's SQL (the view's rows joined to their cutout metadata, with the
order key) over one spine partition's reader (:mod:`warehouse.compute.partitions`) and returns
that partition's rows sorted as the export sorts them. The client re-cuts them into batches of
the size the single-machine stream has and writes them with the existing writer, so the file is
byte-identical. Partitions are disjoint ranges of ``_healpix_29`` in increasing order, so the
concatenation is the global order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any

import duckdb
import pyarrow as pa

from warehouse.compute.mapping import map_in_order
from warehouse.compute.partitions import (
    PartitionPlan,
    partition_reader,
    plan_partitions,
    read_error,
)
from warehouse.errors import ComputeError
from warehouse.healpix import SPATIAL_INDEX_COLUMN
from warehouse.store import Partition

__all__ = ["export_batches", "keyed_batches", "partition_query", "rebatch"]


def partition_query(
    plan: PartitionPlan,
    sql: str,
    params: list,
    key: str,
    order_by: str,
    part: Partition,
) -> pa.Table:
    """The rows of ``sql`` whose ``key`` (an int64 ``_healpix_29``) lies in ``part``, sorted by
    ``order_by`` (runs on a worker). ``key`` and ``order_by`` are SQL written by the caller,
    never user values.

    The view rows are exact for objects of ``part`` (their spine ``_healpix_29`` lies in it); a
    row placed in ``part`` by ``key`` whose spine position lies elsewhere is refused.
    """
    lo, hi = part.h29_range()
    try:
        with partition_reader(plan, part) as con:
            table = con.sql(
                f"SELECT * FROM ({sql}) AS k WHERE {key} >= ? AND {key} < ? ORDER BY {order_by}",
                params=[*params, lo, hi],
            ).to_arrow_table()
    except duckdb.Error as exc:
        raise read_error(exc, plan, part, "partition") from None
    if SPATIAL_INDEX_COLUMN in table.column_names:
        h29 = table.column(SPATIAL_INDEX_COLUMN).to_numpy(zero_copy_only=False)
        outside = (h29 < lo) | (h29 >= hi)
        if outside.any():
            oid = table.column("object_id")[int(outside.argmax())].as_py()
            raise ComputeError(
                f"object {oid}: its image lies in partition {part.order}/{part.pixel} but its "
                "photometry in another, so the rows cannot be split by partition exactly. "
                "Export without --dask."
            )
    return table


def rebatch(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of exactly ``rows`` rows (the last one shorter) over ``tables`` in order,
    all with the first table's schema."""
    schema: pa.Schema | None = None
    pending: list[pa.Table] = []
    held = 0
    for table in tables:
        if schema is None:
            schema = table.schema
        elif table.schema != schema:
            table = table.cast(schema)
        if table.num_rows == 0:
            continue
        pending.append(table)
        held += table.num_rows
        while held >= rows:
            joined = pa.concat_tables(pending).combine_chunks()
            yield joined.slice(0, rows).to_batches()[0]
            rest = joined.slice(rows)
            pending, held = ([rest] if rest.num_rows else []), rest.num_rows
    if held:
        batches = pa.concat_tables(pending).combine_chunks().to_batches()
        if batches:
            yield batches[0]


def keyed_batches(
    client: Any,
    plan: PartitionPlan,
    sql: str,
    params: list,
    key: str,
    order_by: str,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``sql`` in ``order_by`` order, split by the plan's partitions on ``key``,
    computed on ``client``'s workers (None: here), as batches of ``batch_rows`` rows."""
    run = functools.partial(partition_query, plan, sql, list(params), key, order_by)
    yield from rebatch(map_in_order(client, run, plan.partitions), batch_rows)


def export_batches(
    wh: Any, client: Any, keyed: str, params: list, key: str, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The export's keyed rows (``keyed``: its SQL, ordered by ``key`` then ``object_id``)
    computed per partition of ``wh``'s committed state (call inside ``wh.reading()``)."""
    plan = plan_partitions(wh)
    order_by = f"{key}, object_id"
    yield from keyed_batches(client, plan, keyed, params, key, order_by, batch_rows)
