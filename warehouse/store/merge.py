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
import pyarrow.parquet as pq

from warehouse.errors import LoadError
from warehouse.healpix import SPATIAL_INDEX_COLUMN, spatial_index
from warehouse.store.margins import DEFAULT_MARGIN_ARCSEC, MarginBuilder, margin_name
from warehouse.store.versions import (
    CatalogVersion,
    Partition,
    TableSpec,
    _unify_schema,
    compute_partitions,
    conform,
    link_or_copy,
    read_properties,
    read_version,
    write_collection,
    write_metadata_files,
    write_partition,
    write_properties,
)

__all__ = ["combine_upserts", "merge_version"]


def _read_rows(files: Iterable[Path], columns: list[str] | None = None) -> pa.Table | None:
    tables = [pq.read_table(f, columns=columns) for f in files]
    if not tables:
        return None
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _key_strings(table: pa.Table, key: tuple[str, ...]) -> pa.Array:
    """One comparable value per row for a (possibly composite) key."""
    if len(key) == 1:
        return table.column(key[0]).combine_chunks()
    parts = [pc.cast(table.column(k), pa.string()) for k in key]
    return pc.binary_join_element_wise(*parts, "\x1f")


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
    """One table of upserts equal to applying ``tables`` one after the other: for a key in
    several, the columns of the latest one that carries them win. Each table is checked first
    (:func:`_checked_rows`, naming its source)."""
    checked = [
        _checked_rows(t, old_schema, spec, src) for t, src in zip(tables, sources, strict=True)
    ]
    if len(checked) == 1:
        return checked[0]
    names = [set(t.column_names) for t in checked]
    if all(n == names[0] for n in names):
        schema = checked[0].schema
        for t in checked[1:]:
            schema = _unify_schema(schema, t.schema)
        schema = pa.schema([f for f in schema if f.name in names[0]])
        stacked = pa.concat_tables(
            [conform(t, schema, src) for t, src in zip(checked, sources, strict=True)]
        )
        return _keep_last(stacked, spec.key)
    combined = checked[0]
    for t, src in zip(checked[1:], sources[1:], strict=True):
        combined = _upsert_in_memory(combined, t, spec, src)
    return combined


def _keep_last(table: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """The last row of each key, in the table's order otherwise."""
    position = pa.array(np.arange(table.num_rows, dtype=np.int64))
    indexed = table.select(list(key)).append_column("__row", position)
    last = indexed.group_by(list(key), use_threads=False).aggregate([("__row", "max")])
    rows = np.sort(last.column("__row_max").to_numpy())
    if rows.size == table.num_rows:
        return table
    return table.take(pa.array(rows))


def _upsert_in_memory(base: pa.Table, new: pa.Table, spec: TableSpec, source: str) -> pa.Table:
    """``base`` upserted with ``new``: ``new``'s columns win, ``base``'s others are kept."""
    schema = _unify_schema(base.schema, new.schema)
    schema = pa.schema(
        [f for f in schema if f.name in base.column_names or f.name in new.column_names]
    )
    base_keys, new_keys = _key_strings(base, spec.key), _key_strings(new, spec.key)
    replaced = pc.is_in(base_keys, value_set=new_keys)
    keep_cols = [c for c in base.column_names if c not in new.column_names or c in spec.key]
    joined = new.join(
        base.filter(replaced).select(keep_cols),
        keys=list(spec.key),
        join_type="left outer",
        use_threads=True,
        coalesce_keys=True,
    )
    return pa.concat_tables(
        [
            conform(base.filter(pc.invert(replaced)), schema, source),
            conform(joined, schema, source),
        ]
    )


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

    ``new_rows`` is one table or several (one per input file, in load order, with ``source``
    naming each); every partition is written once. Each table must carry the key columns; it
    carries ``spec.ra``/``spec.dec`` unless every key already exists (then the stored position
    is kept). With ``margin_arcsec`` (the default), ``dest`` is a HATS collection of the
    table's catalog ``dest/<name>`` and its margin catalog; with None, ``dest`` is the catalog.
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
    # 1. Where every stored row sits, to find the rows the new ones replace.
    new_keys = _key_strings(new_rows, spec.key)
    if previous is not None and previous.nrows:
        stored = _read_rows(previous.files(), list(spec.key) + [SPATIAL_INDEX_COLUMN])
        assert stored is not None
        stored_keys = _key_strings(stored, spec.key)
        stored_h29 = stored.column(SPATIAL_INDEX_COLUMN).to_numpy()
        is_touched = pc.is_in(stored_keys, value_set=new_keys).to_numpy(zero_copy_only=False)
    else:
        stored_keys = pa.array([], new_keys.type)
        stored_h29 = np.zeros(0, np.int64)
        is_touched = np.zeros(0, bool)
    touched_h29 = stored_h29[is_touched]

    # 2. The merged content of every new row: its own columns, the stored ones for the rest.
    merged = new_rows
    if is_touched.any():
        touched_keys = pc.filter(stored_keys, pa.array(is_touched))
        assert previous is not None
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
        old_rows = old_rows.filter(
            pc.is_in(_key_strings(old_rows, spec.key), value_set=touched_keys)
        )
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
    merged = merged.sort_by(
        [(SPATIAL_INDEX_COLUMN, "ascending")] + [(k, "ascending") for k in spec.key]
    )
    merged_h29 = merged.column(SPATIAL_INDEX_COLUMN).to_numpy()

    # 3. The new partitioning over all rows, then each partition: link if untouched, else write.
    all_h29 = np.sort(np.concatenate([stored_h29[~is_touched], merged_h29]))
    layout = compute_partitions(all_h29, max_rows, max_order)
    old_parts = set(previous.partitions) if previous else set()
    touched_sorted = np.sort(touched_h29)
    catalog = dest / spec.name if margin_arcsec is not None else dest
    catalog.mkdir(parents=True, exist_ok=True)
    margins = MarginBuilder([p for p, _ in layout], margin_arcsec) if margin_arcsec else None
    written: list[tuple[Partition, Path]] = []
    linked: list[Partition] = []
    for part, count in layout:
        lo, hi = part.h29_range()
        target = catalog / part.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        changed = (
            schema_changed
            or part not in old_parts
            or _any_in_sorted(merged_h29, lo, hi)
            or _any_in_sorted(touched_sorted, lo, hi)
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
                    t = pq.read_table(
                        previous.path / op.relpath,
                        filters=[(SPATIAL_INDEX_COLUMN, ">=", lo), (SPATIAL_INDEX_COLUMN, "<", hi)],
                    )
                    if is_touched.any():
                        t = t.filter(
                            pc.invert(pc.is_in(_key_strings(t, spec.key), value_set=new_keys))
                        )
                    if t.num_rows:
                        pieces.append(conform(t, schema, source))
        a = int(np.searchsorted(merged_h29, lo, "left"))
        b = int(np.searchsorted(merged_h29, hi, "left"))
        if b > a:
            pieces.append(merged.slice(a, b - a))
        if len(pieces) == 1 and b > a:
            table = pieces[0]  # a slice of ``merged``, already in order
        else:
            table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
            table = table.sort_by(
                [(SPATIAL_INDEX_COLUMN, "ascending")] + [(k, "ascending") for k in spec.key]
            )
        if table.num_rows != count:
            raise AssertionError(f"partition {part} has {table.num_rows} rows, expected {count}")
        write_partition(table, target)
        written.append((part, target))
        if margins is not None:
            margins.add(table)
        del table, pieces

    nrows = int(all_h29.size)
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
        h29 = pq.read_table(old_file, columns=[SPATIAL_INDEX_COLUMN]).column(0).to_numpy()
        keep = in_linked(h29)
        if keep.all() and i not in margins.fresh:
            margins.link(i, old_file)  # every row from unchanged partitions, none new
        elif keep.any():
            margins.add_to(i, pq.read_table(old_file).filter(pa.array(keep)))
    if not rescan:
        return
    for part in linked:
        h29 = pq.read_table(previous.path / part.relpath, columns=[SPATIAL_INDEX_COLUMN])
        _rows, targets = margins.index.route(h29.column(0).to_numpy())
        if np.isin(targets, list(rescan)).any():
            margins.add(pq.read_table(previous.path / part.relpath), only=rescan)


def _any_in_range(values: np.ndarray, lo: int, hi: int) -> bool:
    return bool(values.size) and bool(np.any((values >= lo) & (values < hi)))


def _any_in_sorted(values: np.ndarray, lo: int, hi: int) -> bool:
    return bool(np.searchsorted(values, hi, "left") > np.searchsorted(values, lo, "left"))
