"""The catalog rows of a planned export, in order and in batches, and the loop that writes
them and each image partition's pixels once its rows are all known (:func:`_stream`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from warehouse.errors import ExportError
from warehouse.export.columns import _PREFIX, to_numpy
from warehouse.export.plan import _Plan, sorted_sql
from warehouse.export.writer import CATALOG_BATCH_ROWS, _Writer


def catalog_reader(con, plan: _Plan) -> pa.RecordBatchReader:
    """The planned rows with their keys, in the export's order, in batches (the query runs
    now; DuckDB sorts without the GIL)."""
    return con.sql(sorted_sql(plan.keyed), params=plan.params or None).to_arrow_reader(
        CATALOG_BATCH_ROWS
    )


def fetched_batches(table: pa.Table) -> Iterator[pa.RecordBatch]:
    """The rows of ``table`` (a plan's, fetched sorted) in the batches :func:`catalog_reader`
    would give: :data:`CATALOG_BATCH_ROWS` rows each."""
    for start in range(0, table.num_rows, CATALOG_BATCH_ROWS):
        part = table.slice(start, CATALOG_BATCH_ROWS)
        batches = part.to_batches()
        yield batches[0] if len(batches) == 1 else part.combine_chunks().to_batches()[0]


def _stream(
    con,
    writer: _Writer,
    plan: _Plan,
    bar,
    batches: Iterator[pa.RecordBatch] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> None:
    """Catalog rows in order, batch by batch; each image partition's pixels once its rows are
    all known. ``batches``: the same rows in the same batches, computed on Dask. ``on_rows(k)``
    is told whenever rows 0 .. k-1 are all written (catalog and pixels)."""
    stream = catalog_reader(con, plan) if batches is None else batches
    start = 0
    current = -1
    pending_rows: list[np.ndarray] = []
    pending_ids: list[np.ndarray] = []

    def flush() -> None:
        if current >= 0 and pending_rows:
            writer.write_partition(
                current, np.concatenate(pending_rows), np.concatenate(pending_ids)
            )
        pending_rows.clear()
        pending_ids.clear()

    # Pixels first when they are written in the background (chunkfile.py): the writer thread
    # starts a batch earlier. With ``on_rows`` a batch's catalog rows come before its pixels.
    catalog_first = on_rows is not None or writer.chunks is None
    for batch in stream:
        n = batch.num_rows
        if n == 0:
            continue
        if catalog_first:
            writer.write_batch(batch, start)
        has = to_numpy(batch.column(_PREFIX + "has_cutout"))
        h29 = to_numpy(batch.column(_PREFIX + "h29"))
        ids = to_numpy(batch.column("object_id"))
        part = writer.partition_of(h29.astype(np.int64))
        rows = np.arange(start, start + n)
        sel = np.flatnonzero(has)
        if sel.size:
            writer.read_ahead(int(part[sel[0]]) if current < 0 else current)
        for k in np.unique(part[sel]).tolist():
            if k < 0:  # pragma: no cover - a cutout row always sits in a partition
                raise ExportError("a cutout lies outside every partition of its table")
            in_k = sel[part[sel] == k]
            if k != current:
                flush()
                current = k
                if on_rows is not None:  # every row before this partition's first is complete
                    on_rows(int(rows[in_k[0]]))
            pending_rows.append(rows[in_k])
            pending_ids.append(ids[in_k])
        if not catalog_first:
            writer.write_batch(batch, start)
        start += n
        bar.update(n)
        if on_rows is not None:  # rows before the pending partition's first are complete
            on_rows(int(pending_rows[0][0]) if pending_rows else start)
    writer.last = True
    flush()
    writer.finish()
    if on_rows is not None:
        on_rows(start)
    if start != plan.rows:
        raise ExportError(
            f"the query returned {start} rows while writing but {plan.rows} when counted; "
            "did the warehouse change meanwhile? Export again."
        )
