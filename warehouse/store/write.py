"""Writing the next version of a table: the partition layout, each partition linked when nothing
in it changed or else written once (previous rows kept, new rows in), the catalog's metadata, its
margin catalog and the collection that names both.

Callers (:func:`warehouse.store.merge.merge_version` for rows in memory,
:class:`warehouse.store.batch.UpsertBatch` for rows spilled to disk) say where the new rows are
(:class:`VersionPlan`) and give two functions: the new rows of a HEALPix range, and a previous
partition's rows without those the new rows replace. A background thread writes one partition
while the next is assembled: reading and writing overlap on two cores.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from warehouse.damage import read_stored
from warehouse.healpix import SPATIAL_INDEX_COLUMN
from warehouse.store.layout import ParquetLayout
from warehouse.store.margins import MarginBuilder, margin_name
from warehouse.store.versions import (
    CatalogVersion,
    Partition,
    TableSpec,
    compute_partitions,
    conform,
    link_or_copy,
    partition_writer,
    read_properties,
    read_version,
    sort_order,
    write_collection,
    write_metadata_files,
    write_properties,
)

__all__ = ["Ordered", "VersionPlan", "finish_version", "write_version"]


@dataclass(frozen=True)
class Ordered:
    """The rows of ``table`` in the order ``indices``: taken a row group at a time while the
    row group before is written (two cores: one takes, one encodes and compresses)."""

    table: pa.Table
    indices: np.ndarray


def _taken(rows: pa.Table | Ordered) -> pa.Table:
    return rows.table.take(pa.array(rows.indices)) if isinstance(rows, Ordered) else rows


def _write_ordered(
    pool: ThreadPoolExecutor,
    pending: Future | None,
    rows: Ordered,
    schema: pa.Schema,
    target: Path,
    margins: MarginBuilder | None,
    layout: ParquetLayout,
) -> Future:
    """Queue the partition file of ``rows``: one row group in the writer thread at a time."""
    writer = partition_writer(target, schema, layout)
    n, step = rows.indices.size, layout.row_group_rows
    try:
        for start in range(0, n, step):
            chunk = rows.table.take(pa.array(rows.indices[start : start + step]))
            if margins is not None:
                margins.add(chunk)
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write_table, chunk, row_group_size=step)
        if pending is not None:
            pending.result()
    except BaseException:
        writer.abandon(pending)
        raise
    return pool.submit(writer.close)


@dataclass(frozen=True)
class VersionPlan:
    """What the next version holds: its schema, the ``_healpix_29`` of all its rows and of the
    new ones, and of the stored rows they replace (all sorted)."""

    schema: pa.Schema
    schema_changed: bool
    all_h29: np.ndarray
    new_h29: np.ndarray
    replaced_h29: np.ndarray


def write_version(
    previous: CatalogVersion | None,
    spec: TableSpec,
    dest: Path,
    plan: VersionPlan,
    new_rows_in: Callable[[int, int], list[pa.Table | Ordered]],
    without_replaced: Callable[[pa.Table, int, int], pa.Table],
    *,
    max_rows: int,
    max_order: int,
    margin_arcsec: float | None,
    source: str,
) -> CatalogVersion:
    """Write the version ``plan`` describes into ``dest`` (see :func:`merge_version`)."""
    schema = plan.schema
    layout = compute_partitions(plan.all_h29, max_rows, max_order)
    old_parts = set(previous.partitions) if previous else set()
    catalog = dest / spec.name if margin_arcsec is not None else dest
    catalog.mkdir(parents=True, exist_ok=True)
    margins = MarginBuilder([p for p, _ in layout], margin_arcsec) if margin_arcsec else None
    written: list[tuple[Partition, Path]] = []
    linked: list[Partition] = []
    pending: Future | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-write") as pool:
        for part, count in layout:
            lo, hi = part.h29_range()
            target = catalog / part.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            changed = (
                plan.schema_changed
                or part not in old_parts
                or _any_in_sorted(plan.new_h29, lo, hi)
                or _any_in_sorted(plan.replaced_h29, lo, hi)
            )
            if not changed:
                assert previous is not None
                link_or_copy(previous.path / part.relpath, target)
                written.append((part, target))
                linked.append(part)
                continue
            pieces = []
            if previous is not None:
                for op in previous.partitions:
                    olo, ohi = op.h29_range()
                    if olo < hi and lo < ohi:
                        t = read_stored(
                            previous.path / op.relpath,
                            filters=[
                                (SPATIAL_INDEX_COLUMN, ">=", lo),
                                (SPATIAL_INDEX_COLUMN, "<", hi),
                            ],
                        )
                        t = without_replaced(t, lo, hi)
                        if t.num_rows:
                            pieces.append(conform(t, schema, source))
            new = new_rows_in(lo, hi)
            if not pieces and len(new) == 1 and isinstance(new[0], Ordered):
                rows = new[0]
            else:
                table = pa.concat_tables(pieces + [_taken(n) for n in new])
                if table.num_columns and table.column(0).num_chunks > 1:
                    # one copy of the partition: takes from many chunks (runs) are slow
                    table = table.combine_chunks()
                rows = Ordered(table, sort_order(table, spec.key))
            del pieces, new
            if rows.indices.size != count:
                raise AssertionError(
                    f"partition {part} has {rows.indices.size} rows, expected {count}"
                )
            pending = _write_ordered(pool, pending, rows, schema, target, margins, spec.layout)
            written.append((part, target))
            del rows
        if pending is not None:
            pending.result()

    return finish_version(
        previous, spec, dest, catalog, schema, written, linked, margins,
        nrows=int(plan.all_h29.size), max_rows=max_rows, margin_arcsec=margin_arcsec,
    )  # fmt: skip


def finish_version(
    previous: CatalogVersion | None,
    spec: TableSpec,
    dest: Path,
    catalog: Path,
    schema: pa.Schema,
    written: list[tuple[Partition, Path]],
    linked: list[Partition],
    margins: MarginBuilder | None,
    *,
    nrows: int,
    max_rows: int,
    margin_arcsec: float | None,
) -> CatalogVersion:
    """The catalog's metadata once every partition is in place (``written``, in layout order;
    ``linked`` those unchanged from ``previous``), its margin catalog and the collection."""
    parts = [p for p, _ in written]
    write_metadata_files(catalog, schema, written)
    write_properties(catalog, spec, nrows, parts, max_rows)
    margin_dir = None
    if margins is not None and margin_arcsec is not None:
        _margins_of_linked(margins, previous, linked, margin_arcsec)
        margin_dir = dest / margin_name(spec.name, margin_arcsec)
        margins.write(margin_dir, spec, schema, spec.name, max_rows)
        write_collection(dest, spec, spec.name, margin_dir.name)
    return CatalogVersion(
        catalog,
        parts,
        schema,
        nrows,
        read_properties(catalog / "hats.properties"),
        dest if margin_dir is not None else None,
        margin_dir,
    )


def _margins_of_linked(
    margins: MarginBuilder,
    previous: CatalogVersion | None,
    linked: list[Partition],
    threshold: float,
) -> None:
    """Add to ``margins`` the rows that partitions linked unchanged from ``previous`` give to the
    margins of the new layout.

    A partition that existed before with a margin of the same threshold finds them in its old
    margin file (the rows there whose ``_healpix_29`` lies in a linked partition: those files,
    and so their rows near its border, did not change). Any other partition's margin reads the
    linked partitions themselves.
    """
    if not linked or previous is None:
        return
    old_margin = None
    if previous.margin is not None and previous.margin_threshold == threshold:
        old_margin = read_version(previous.margin)
    old_parts = set(previous.partitions)
    bounds = np.array(sorted(p.h29_range() for p in linked), np.int64)

    def in_linked(h29: np.ndarray) -> np.ndarray:
        i = np.searchsorted(bounds[:, 0], h29, "right") - 1
        return (i >= 0) & (h29 < bounds[np.clip(i, 0, None), 1])

    rescan: set[int] = set()
    old_margin_parts = set(old_margin.partitions) if old_margin is not None else set()
    for i, part in enumerate(margins.index.partitions):
        if old_margin is None or part not in old_parts:
            rescan.add(i)
            continue
        if part not in old_margin_parts:
            continue  # its old margin was empty: the linked partitions gave it no rows
        old_file = old_margin.path / part.relpath
        margins.previous(i, old_file)
        h29 = read_stored(old_file, columns=[SPATIAL_INDEX_COLUMN]).column(0).to_numpy()
        keep = in_linked(h29)
        if keep.all() and i not in margins.fresh:
            margins.link(i, old_file)  # every row from unchanged partitions, none new
        elif keep.any():
            margins.add_to(i, read_stored(old_file).filter(pa.array(keep)))
    if not rescan:
        return
    for part in linked:
        h29 = read_stored(previous.path / part.relpath, columns=[SPATIAL_INDEX_COLUMN])
        _rows, targets = margins.index.route(h29.column(0).to_numpy())
        if np.isin(targets, list(rescan)).any():
            margins.add(read_stored(previous.path / part.relpath), only=rescan)


def _any_in_sorted(values: np.ndarray, lo: int, hi: int) -> bool:
    return bool(np.searchsorted(values, hi, "left") > np.searchsorted(values, lo, "left"))
