"""Writing one partition of a new version as a task that holds only paths and plain values, so
any process on a shared file system can run it (this one, or a Dask worker).

A :class:`PartitionTask` names where the partition's rows are: slices of the load's sorted runs
on disk (:mod:`warehouse.store.spill`, with the file of the rows that win across inputs), the
previous version's partition files overlapping it (with the file of the stored keys the new
rows replace), and what the margin needs. :func:`write_partition_task` reads them, writes the
partition file (rows in ``_healpix_29`` then key order, one row group taken while the one
before is encoded) and the rows it gives to other partitions' margins, and returns a
:class:`PartitionResult`. The same task gives the same bytes wherever it runs.

A *mapper* runs tasks: ``mapper(write_partition_task, tasks)`` returns the results in task
order; :func:`local_map` (the default) runs them here, one after the other.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.damage import read_stored
from warehouse.healpix import SPATIAL_INDEX_COLUMN
from warehouse.store.layout import DEFAULT_LAYOUT, ParquetLayout
from warehouse.store.margins import MarginIndex
from warehouse.store.versions import (
    Partition,
    conform,
    key_values,
    partition_writer,
    read_version,
    sort_order,
)

__all__ = [
    "MARGIN_TARGET",
    "LOCAL_WORKERS",
    "Mapper",
    "PartitionResult",
    "PartitionTask",
    "RunSlice",
    "local_map",
    "take_rows",
    "write_partition_task",
]

MARGIN_TARGET = "__margin_partition"
"""Column of a task's margin file: the index (in the layout) of the partition a row's margin
serves."""

Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]


LOCAL_WORKERS = 2
"""Tasks :func:`local_map` runs at once: while one partition is encoded and compressed, the
next is assembled (and two compress at once on two cores)."""


def local_map(function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    """The default mapper: the tasks in this process, :data:`LOCAL_WORKERS` at a time in
    threads (Arrow and Parquet release the GIL), results in task order. Every task is queued
    at once (a queued task is a few paths), so a worker never idles behind a large partition
    whose result is not yet due."""
    with ThreadPoolExecutor(LOCAL_WORKERS, thread_name_prefix="gwh-task") as pool:
        pending: deque[Future] = deque(pool.submit(function, item) for item in items)
        try:
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


@dataclass(frozen=True)
class RunSlice:
    """Rows ``start:stop`` of a sorted run (an Arrow IPC file); ``keep``: a ``.npy`` boolean
    array over the whole run of the rows that win across inputs (None: all). ``rows``: the run
    itself while the load holds it in memory (tasks run in this process read it there; a
    mapper that runs them elsewhere gets runs written to ``path`` and no ``rows``)."""

    path: str
    start: int
    stop: int
    keep: str | None = None
    rows: pa.Table | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PartitionTask:
    """Everything needed to write one partition of the next version; paths and plain values."""

    order: int
    pixel: int
    rows: int  # rows the partition must hold
    target: str  # the partition file to write
    schema: bytes  # the version's Arrow schema, serialized
    key: tuple[str, ...]
    source: str  # names the load in error messages
    new: tuple[RunSlice, ...]
    previous: tuple[str, ...] = ()  # previous partition files overlapping this one
    drop: str | None = None  # Arrow IPC file, column "k": stored keys the new rows replace
    # upserts that lack stored columns: (previous catalog, Arrow IPC file of every replaced
    # stored row's key "k" and "h29" sorted by h29, the columns to fill)
    fill: tuple[str, str, tuple[str, ...]] | None = None
    margin_threshold: float | None = None
    layout: tuple[tuple[int, int], ...] = ()  # every partition of the version (for margins)
    margin_out: str | None = None  # Arrow IPC file of this partition's rows for other margins
    parquet: ParquetLayout = DEFAULT_LAYOUT  # the table's row groups and compression


@dataclass(frozen=True)
class PartitionResult:
    order: int
    pixel: int
    path: str
    rows: int
    margin: str | None  # the task's margin_out, when some rows feed other partitions' margins


def write_partition_task(task: PartitionTask) -> PartitionResult:
    """Write the partition ``task`` describes (see the module doc)."""
    schema = pa.ipc.read_schema(pa.py_buffer(task.schema))
    lo, hi = Partition(task.order, task.pixel).h29_range()
    pieces = []
    drop = _read_ipc(task.drop).column("k").combine_chunks() if task.drop else None
    for path in task.previous:
        t = read_stored(
            path, filters=[(SPATIAL_INDEX_COLUMN, ">=", lo), (SPATIAL_INDEX_COLUMN, "<", hi)]
        )
        if drop is not None and len(drop) and t.num_rows:
            t = t.filter(pc.invert(pc.is_in(key_values(t, task.key), value_set=drop)))
        if t.num_rows:
            pieces.append(conform(t, schema, task.source))
    new = [read_run_slice(s) for s in task.new]
    new = [t for t in new if t.num_rows]
    if new and task.fill is not None:
        new = [_fill_from_stored(pa.concat_tables(new), task, schema)]
    presorted = not pieces and len(new) == 1  # a run's rows are sorted already
    pieces += [conform(t, schema, task.source) for t in new]
    del new
    table = pa.concat_tables(pieces) if pieces else schema.empty_table()
    del pieces
    if presorted:
        order = np.arange(table.num_rows, dtype=np.int64)
    else:  # taken from the pieces as they are: combining them first would copy every row twice
        order = sort_order(table, task.key)
    if order.size != task.rows:
        raise AssertionError(
            f"partition {task.order}/{task.pixel} has {order.size} rows, expected {task.rows}"
        )
    Path(task.target).parent.mkdir(parents=True, exist_ok=True)
    out: list[str] = []

    def margin() -> None:  # while the writer thread encodes the first row group
        if task.margin_threshold is None or task.margin_out is None:
            return
        rows = _margin_rows(table, order, task)
        if rows.num_rows:
            _write_ipc(rows, Path(task.margin_out))
            out.append(task.margin_out)

    _write_sorted(
        table, None if presorted else order, schema, Path(task.target), task.parquet, margin
    )
    return PartitionResult(
        task.order, task.pixel, task.target, int(order.size), out[0] if out else None
    )


def read_run_slice(piece: RunSlice) -> pa.Table:
    """The rows of ``piece``, winners only: memory-mapped, so only its pages are read, and
    unmapped when the table is dropped (or a zero-copy slice of the run held in memory)."""
    if piece.rows is not None:
        table = piece.rows.slice(piece.start, piece.stop - piece.start)
        return _winners(table, piece)
    with pa.memory_map(piece.path, "r") as source:
        reader = pa.ipc.open_file(source)
        batches, offset = [], 0
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            end = offset + batch.num_rows
            if end > piece.start and offset < piece.stop:
                a, b = max(piece.start - offset, 0), min(piece.stop, end) - offset
                batches.append(batch.slice(a, b - a))
            offset = end
            if offset >= piece.stop:
                break
        table = pa.Table.from_batches(batches, reader.schema)
    return _winners(table, piece)


def _winners(table: pa.Table, piece: RunSlice) -> pa.Table:
    if piece.keep is not None:
        keep = np.load(piece.keep, mmap_mode="r")[piece.start : piece.stop]
        table = table.filter(pa.array(np.asarray(keep)))
    return table


def _write_sorted(
    table: pa.Table,
    order: np.ndarray | None,
    schema: pa.Schema,
    target: Path,
    layout: ParquetLayout,
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """The rows of ``table`` in ``order`` (None: as they are) as one partition file: a row
    group is taken while the writer thread encodes and compresses the one before, and
    ``meanwhile`` runs while it encodes the first."""
    writer = partition_writer(target, schema, layout)
    step = layout.row_group_rows
    pending: Future | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-write") as pool:
        try:
            for start in range(0, table.num_rows, step):
                if order is None:
                    chunk = table.slice(start, step)
                else:
                    chunk = take_rows(table, order[start : start + step])
                if pending is not None:
                    pending.result()
                pending = pool.submit(writer.write_table, chunk, row_group_size=step)
                if meanwhile is not None:
                    meanwhile()
                    meanwhile = None
            if meanwhile is not None:  # no rows
                meanwhile()
            if pending is not None:
                pending.result()
        except BaseException:
            writer.abandon(pending)
            raise
        writer.close()


def take_rows(table: pa.Table, indices: np.ndarray) -> pa.Table:
    """``table.take(indices)``, copying from each chunk only the span of rows ``indices`` use.

    Arrow's take over a table of several chunks (a partition's pieces: slices of the load's
    runs and of the previous version) first concatenates each whole column: taking one row
    group of a partition that way copies the whole partition. Here the spans of its chunks
    that the rows come from are copied into one table (about a row group when the pieces are
    sorted, as runs and partitions are) and the rows taken from it.

    When the rows come in long runs of consecutive rows (pieces that cover their own parts of
    the sky, as the chunks of a file written tile by tile do: a row group of 100,000 rows
    from a few hundred runs), the runs are sliced and copied once, in order, instead."""
    batches = table.to_batches()  # aligned over the columns (zero-copy)
    if len(batches) <= 1 or indices.size == 0:
        return table.take(pa.array(indices, pa.int64()))
    sizes = np.array([b.num_rows for b in batches], np.int64)
    starts = np.cumsum(sizes) - sizes
    runs = _runs(indices.astype(np.int64, copy=False), starts)
    if runs is not None:
        batch = np.searchsorted(starts, runs[0], "right") - 1
        at = (runs[0] - starts[batch]).tolist()
        slices = [
            batches[b].slice(a, n)
            for b, a, n in zip(batch.tolist(), at, runs[1].tolist(), strict=True)
        ]
        return pa.Table.from_batches(slices, table.schema).combine_chunks()
    wanted = np.zeros(table.num_rows, bool)
    wanted[indices] = True
    rows = np.flatnonzero(wanted)  # the rows used, sorted
    first = np.searchsorted(rows, starts, "left")
    last = np.searchsorted(rows, starts + sizes, "left") - 1
    used = np.flatnonzero(last >= first)
    lo = np.zeros(len(batches), np.int64)
    lo[used] = rows[first[used]] - starts[used]
    spans = rows[last[used]] - rows[first[used]] + 1
    at = np.zeros(len(batches), np.int64)
    at[used] = np.cumsum(spans) - spans  # where each span starts in the copy
    batch = np.searchsorted(starts, indices, "right") - 1
    part = pa.Table.from_batches(
        [batches[b].slice(lo[b], n) for b, n in zip(used.tolist(), spans.tolist(), strict=True)],
        table.schema,
    ).combine_chunks()
    return part.take(pa.array(at[batch] + indices - starts[batch] - lo[batch], pa.int64()))


RUN_ROWS_MIN = 64
"""Mean length of the runs of consecutive rows from which :func:`take_rows` copies slices
rather than taking rows one by one."""


def _runs(indices: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(first row, length) of each run of consecutive ``indices`` within one chunk (chunks
    start at ``starts``); None when the runs are shorter than :data:`RUN_ROWS_MIN` rows on
    average."""
    cut = np.diff(indices) != 1
    if np.count_nonzero(cut) * RUN_ROWS_MIN >= indices.size:
        return None
    cut |= np.isin(indices[1:], starts)  # a run never crosses into the next chunk
    first = np.flatnonzero(np.r_[True, cut])
    lengths = np.diff(np.r_[first, indices.size])
    if lengths.size * RUN_ROWS_MIN > indices.size:
        return None
    return indices[first], lengths


def _margin_rows(table: pa.Table, order: np.ndarray, task: PartitionTask) -> pa.Table:
    """The rows of this partition that other partitions' margins hold, each with the index of
    the partition it serves (:data:`MARGIN_TARGET`), in the partition's row order."""
    assert task.margin_threshold is not None
    index = MarginIndex([Partition(o, p) for o, p in task.layout], task.margin_threshold)
    h29 = table.column(SPATIAL_INDEX_COLUMN).to_numpy()[order]
    rows, targets = index.route(h29)
    if rows.size == 0:
        return table.schema.empty_table().append_column(MARGIN_TARGET, pa.array([], pa.int64()))
    by = np.lexsort((rows, targets))
    taken = take_rows(table, order[rows[by]])
    return taken.append_column(MARGIN_TARGET, pa.array(targets[by], pa.int64()))


def _fill_from_stored(new: pa.Table, task: PartitionTask, schema: pa.Schema) -> pa.Table:
    """``new`` with the stored values of the columns it does not carry (upsert: a row replaces
    the columns it has and keeps the others), looked up where each key is stored."""
    assert task.fill is not None
    catalog, index_file, missing = task.fill
    index = _read_ipc(index_file)
    replaced_keys = index.column("k").combine_chunks()
    replaced_h29 = index.column("h29").to_numpy()
    idx = pc.index_in(key_values(new, task.key), value_set=replaced_keys)
    idx = idx.fill_null(-1).to_numpy(zero_copy_only=False)
    hit = idx >= 0
    if not hit.any():
        return new
    h = replaced_h29[idx[hit]]
    previous = read_version(Path(catalog))
    files = [
        previous.path / p.relpath
        for p in previous.partitions
        if np.any((h >= p.h29_range()[0]) & (h < p.h29_range()[1]))
    ]
    columns = list(task.key) + list(missing)
    old = pa.concat_tables(read_stored(f, columns=columns) for f in files)
    old = old.filter(pc.is_in(key_values(old, task.key), value_set=key_values(new, task.key)))
    present = [c for c in missing if c in new.column_names]
    joined = new.drop_columns(present).join(
        old, keys=list(task.key), join_type="left outer", use_threads=True, coalesce_keys=True
    )
    return conform(joined, schema, task.source)


def _read_ipc(path: str) -> pa.Table:
    with pa.OSFile(path, "rb") as source:
        return pa.ipc.open_file(source).read_all()


def _write_ipc(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
