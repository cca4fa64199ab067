"""Upserting rows into a table: the next version of a catalog from the previous one and the rows
of one or more input files, each partition written once, with its margin catalog.

Rows are upserted by the table's key: a row whose key already exists replaces the columns it
carries and keeps the others, so a ``forced2`` export adds its columns to the objects a
``forced`` export loaded, and loading the same rows twice changes nothing. Several inputs merged
into one version (:func:`combine_upserts`) behave exactly as if they were loaded one after the
other: a later input's row wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.damage import read_stored
from warehouse.errors import LoadError
from warehouse.healpix import SPATIAL_INDEX_COLUMN, spatial_index
from warehouse.store.margins import DEFAULT_MARGIN_ARCSEC
from warehouse.store.versions import (
    CatalogVersion,
    TableSpec,
    _unify_schema,
    conform,
    key_values,
    sort_order,
)
from warehouse.store.write import Ordered, VersionPlan, write_version

__all__ = ["combine_upserts", "merge_version"]


def _read_rows(files: Iterable[Path], columns: list[str] | None = None) -> pa.Table | None:
    tables = [read_stored(f, columns=columns) for f in files]
    if not tables:
        return None
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _checked_rows(
    new_rows: pa.Table, old_schema: pa.Schema | None, spec: TableSpec, source: str
) -> pa.Table:
    """Refuse NULL keys; never let an Arrow ``null``-typed column reach the stored schema.

    A column with no values at all (every row empty, or a header-only file) carries no type.
    If the table already stores it, it takes the stored type (its NULLs still replace); if
    not, it is left out, which stores the same NULLs and leaves the type to the first file that
    has values, instead of fixing it to ``null`` and refusing every later file.
    """
    if new_rows.num_rows == 0:
        raise LoadError(
            f"{source}: no rows for {spec.name}; nothing to store. The warehouse is unchanged."
        )
    for k in spec.key:
        if k not in new_rows.column_names:
            raise LoadError(f"{source}: has no {k} column, the key of {spec.name}. Add it.")
        nulls = new_rows.column(k).null_count
        if nulls:
            raise LoadError(
                f"{source}: {nulls} row(s) have a NULL {k}, part of the key of {spec.name}. "
                "Every row needs its key; fill in or drop these rows."
            )
    stored = {f.name: f.type for f in old_schema} if old_schema is not None else {}
    for name in list(new_rows.column_names):
        if not pa.types.is_null(new_rows.schema.field(name).type):
            continue
        i = new_rows.column_names.index(name)
        if name in stored and not pa.types.is_null(stored[name]):
            column = pa.nulls(new_rows.num_rows, stored[name])
            new_rows = new_rows.set_column(i, pa.field(name, stored[name]), column)
        else:
            new_rows = new_rows.remove_column(i)
    return new_rows


def combine_upserts(
    tables: Sequence[pa.Table],
    spec: TableSpec,
    old_schema: pa.Schema | None,
    sources: Sequence[str],
) -> pa.Table:
    """One table of upserts equal to applying ``tables`` (inputs with the same columns) one
    after the other: for a key in several, the latest row wins. Each table is checked first
    (:func:`_checked_rows`, naming its source)."""
    checked = [
        _checked_rows(t, old_schema, spec, src) for t, src in zip(tables, sources, strict=True)
    ]
    if len(checked) == 1:
        return checked[0]
    names = sorted(checked[0].column_names)
    if any(sorted(t.column_names) != names for t in checked):
        raise ValueError(
            "combine_upserts takes inputs with the same columns; upsert the others one by one"
        )
    schema = checked[0].schema
    for t in checked[1:]:
        schema = _unify_schema(schema, t.schema)
    schema = pa.schema([f for f in schema if f.name in names])
    stacked = pa.concat_tables(
        [conform(t, schema, src) for t, src in zip(checked, sources, strict=True)]
    )
    return _keep_last(stacked, spec.key)


def _keep_last(table: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """The last row of each key, in the table's order otherwise."""
    position = pa.array(np.arange(table.num_rows, dtype=np.int64))
    indexed = table.select(list(key)).append_column("__row", position)
    last = indexed.group_by(list(key), use_threads=False).aggregate([("__row", "max")])
    rows = np.sort(last.column("__row_max").to_numpy())
    if rows.size == table.num_rows:
        return table
    return table.take(pa.array(rows))


def merge_version(
    previous: CatalogVersion | None,
    new_rows: pa.Table | Sequence[pa.Table],
    spec: TableSpec,
    dest: Path,
    *,
    max_rows: int,
    max_order: int,
    source: str | Sequence[str],
    margin_arcsec: float | None = DEFAULT_MARGIN_ARCSEC,
) -> CatalogVersion:
    """Write into ``dest`` the catalog ``previous`` upserted with ``new_rows``.

    ``new_rows`` is one table or several with the same columns (one per input file, in load
    order, with ``source`` naming each); every partition is written once. Each table must
    carry the key columns; it carries ``spec.ra``/``spec.dec`` unless every key already exists
    (then the stored position is kept). With ``margin_arcsec`` (the default), ``dest`` is a
    HATS collection of the table's catalog ``dest/<name>`` and its margin catalog; with None,
    ``dest`` is the catalog.
    """
    old_schema = previous.schema if previous else None
    tables = [new_rows] if isinstance(new_rows, pa.Table) else list(new_rows)
    sources = [source] * len(tables) if isinstance(source, str) else list(source)
    source = sources[0] if len(sources) == 1 else f"{sources[0]} (and {len(sources) - 1} more)"
    new_rows = combine_upserts(tables, spec, old_schema, sources)
    del tables
    has_position = spec.ra in new_rows.column_names and spec.dec in new_rows.column_names
    schema = _unify_schema(old_schema, new_rows.schema)
    schema_changed = old_schema is None or not old_schema.equals(schema)
    # 1. Where every stored row sits, to find the rows the new ones replace (a first load
    # replaces none: its keys, a string per row for a composite key, are not built).
    new_keys: pa.Array | None = None
    stored_keys: pa.Array | None = None
    if previous is not None and previous.nrows:
        new_keys = key_values(new_rows, spec.key)
        stored = _read_rows(previous.files(), list(spec.key) + [SPATIAL_INDEX_COLUMN])
        assert stored is not None
        stored_keys = key_values(stored, spec.key)
        stored_h29 = stored.column(SPATIAL_INDEX_COLUMN).to_numpy()
        is_touched = pc.is_in(stored_keys, value_set=new_keys).to_numpy(zero_copy_only=False)
    else:
        stored_h29 = np.zeros(0, np.int64)
        is_touched = np.zeros(0, bool)
    touched_h29 = stored_h29[is_touched]

    # 2. The merged content of every new row: its own columns, the stored ones for the rest.
    merged = new_rows
    if is_touched.any():
        assert previous is not None and stored_keys is not None
        touched_keys = pc.filter(stored_keys, pa.array(is_touched))
        touched_pixels = {
            p for p in previous.partitions if _any_in_range(touched_h29, *p.h29_range())
        }
        old_rows = _read_rows(
            [
                previous.path / p.relpath
                for p in sorted(touched_pixels, key=lambda p: (p.order, p.pixel))
            ]
        )
        assert old_rows is not None
        old_rows = old_rows.filter(pc.is_in(key_values(old_rows, spec.key), value_set=touched_keys))
        keep_old = [
            c for c in old_rows.column_names if c not in new_rows.column_names or c in spec.key
        ]
        if not has_position:
            keep_old = list(dict.fromkeys(keep_old + [SPATIAL_INDEX_COLUMN]))
        merged = new_rows.join(
            old_rows.select(keep_old),
            keys=list(spec.key),
            join_type="left outer",
            use_threads=True,
            coalesce_keys=True,
        )
    if has_position:
        ra = merged.column(spec.ra).to_numpy(zero_copy_only=False)
        dec = merged.column(spec.dec).to_numpy(zero_copy_only=False)
        h29 = spatial_index(ra, dec)
        if SPATIAL_INDEX_COLUMN in merged.column_names:
            merged = merged.drop_columns([SPATIAL_INDEX_COLUMN])
        merged = merged.append_column(SPATIAL_INDEX_COLUMN, pa.array(h29, pa.int64()))
    else:
        if (
            SPATIAL_INDEX_COLUMN not in merged.column_names
            or merged.column(SPATIAL_INDEX_COLUMN).null_count
        ):
            missing = (
                merged.filter(pc.is_null(merged.column(SPATIAL_INDEX_COLUMN)))
                if (SPATIAL_INDEX_COLUMN in merged.column_names)
                else merged
            )
            ids = missing.column(spec.key[0]).slice(0, 5).to_pylist()
            raise LoadError(
                f"{source}: has no {spec.ra}/{spec.dec} columns and {missing.num_rows} of its "
                f"{spec.key[0]} values are not in {spec.name} yet (e.g. {ids}). Load the file "
                f"with positions (e.g. a pdr2_wide.forced export) first, or add {spec.ra} and "
                f"{spec.dec} to this export."
            )
    merged = conform(merged, schema, source)
    # sorted by position and key, one partition at a time (the take of one overlaps the write
    # of the one before)
    order = sort_order(merged, spec.key)
    merged_h29 = merged.column(SPATIAL_INDEX_COLUMN).to_numpy()[order]

    # 3. The new partitioning over all rows, then each partition: link if untouched, else write.
    all_h29 = np.sort(np.concatenate([stored_h29[~is_touched], merged_h29]))

    def new_rows_in(lo: int, hi: int) -> list[pa.Table | Ordered]:
        a = int(np.searchsorted(merged_h29, lo, "left"))
        b = int(np.searchsorted(merged_h29, hi, "left"))
        return [Ordered(merged, order[a:b])] if b > a else []

    def without_replaced(t: pa.Table, lo: int, hi: int) -> pa.Table:
        if not is_touched.any():
            return t
        assert new_keys is not None  # rows were touched: there were stored rows
        return t.filter(pc.invert(pc.is_in(key_values(t, spec.key), value_set=new_keys)))

    return write_version(
        previous,
        spec,
        dest,
        VersionPlan(schema, schema_changed, all_h29, merged_h29, np.sort(touched_h29)),
        new_rows_in,
        without_replaced,
        max_rows=max_rows,
        max_order=max_order,
        margin_arcsec=margin_arcsec,
        source=source,
    )


def _any_in_range(values: np.ndarray, lo: int, hi: int) -> bool:
    return bool(values.size) and bool(np.any((values >= lo) & (values < hi)))
