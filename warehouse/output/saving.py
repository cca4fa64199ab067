"""Query results as files: ``--out x.csv``, ``x.parquet``, ``x.json`` or ``x.jsonl`` written
atomically, Parquet with each column's unit and description (Arrow field metadata and astropy's
header); JSON as ``--format json``/``jsonl`` prints it.

Results are written a batch at a time (:func:`save_stream`): memory holds one Parquet row group
(up to :data:`ROW_GROUP_ROWS` rows, fewer for a wide result, :data:`ROW_GROUP_BYTES`), not the
result. Astropy's header needs each text column's longest value before the file is begun, so
a result with text columns is first spilled to an Arrow file beside the output (removed after).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.errors import QueryError
from warehouse.files import Layout, missing_parent, out_of_room
from warehouse.marts.key import VIEW_COLUMNS
from warehouse.output.formats import (
    _huge,
    _is_nested,
    _plain,
    _py_values,
    _write_csv_batches,
    unique_names,
    write_stream,
)
from warehouse.store.contracts import base_tables
from warehouse.store.hsc_columns import field_metadata, forced_columns, specz_columns


def column_metadata(wh) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """``{column: {"unit": ..., "description": ...}}`` known for the warehouse's columns.

    From each loaded base table's stored Arrow field metadata (``unit``, ``description``), else,
    for the HSC-SSP tables, the archive schema shipped with the loader. Views keep column names,
    so a query column takes what the base column of the same name says; a name whose tables
    disagree gets nothing. Empty values are left out.
    """
    seen: dict[str, dict[str, set[str]]] = {}
    for name, d in base_tables().items():
        cv = wh.current_version(name)
        if cv is None:
            continue
        archive = _archive_schema() if name in ("hsc_forced", "hsc_specz") else {}
        for f in cv.schema:
            meta = f.metadata or {}
            col = archive.get(f.name, {})
            for key in ("unit", "description"):
                raw = meta.get(key.encode())
                text = raw.decode() if raw else col.get(key, "")
                if key == "unit" and not text and f.name in (d.spec.ra, d.spec.dec):
                    text = "deg"
                if text:
                    seen.setdefault(f.name, {}).setdefault(key, set()).add(text)
    known = {
        n: {k: next(iter(v)) for k, v in keys.items() if len(v) == 1} for n, keys in seen.items()
    }
    return {**VIEW_COLUMNS, **known}  # a materialised view's stored metadata wins


@functools.cache
def _archive_schema() -> dict[str, dict[str, str]]:
    """Unit and description of each HSC-SSP PDR2 archive column (forced, forced2, specz)."""
    # Catalogs loaded before the HSC loaders stored field metadata have none; the archive
    # schema the loader ships knows each column's unit and description.
    return {n: field_metadata(n) for n in {**specz_columns(), **forced_columns()}}


def with_metadata(table: pa.Table, info: Mapping[str, Mapping[str, str]]) -> pa.Table:
    """``table`` with ``unit``/``description`` field metadata for the columns ``info`` knows."""
    fields = []
    for f in table.schema:
        known = {k: v for k, v in (info.get(f.name) or {}).items() if v}
        if known:
            meta = dict(f.metadata or {})
            meta.update({k.encode(): v.encode() for k, v in sorted(known.items())})
            f = f.with_metadata(meta)
        fields.append(f)
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, table.schema.metadata))


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or _is_bytes(t)


def _is_bytes(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _text_lengths(table: pa.Table, seen: dict[str, tuple[int, bool]]) -> None:
    """Fold ``table``'s text columns into ``seen``: {column: (longest value, any NULL)}, the
    length in characters (bytes for BLOBs), as ``len`` of the Python value counts it."""
    for f in table.schema:
        if _is_text(f.type):
            col = table.column(f.name)
            length = pc.binary_length(col) if _is_bytes(f.type) else pc.utf8_length(col)
            longest = pc.max(length).as_py() or 0
            old, nulls = seen.get(f.name, (0, False))
            seen[f.name] = (max(old, longest), nulls or col.null_count > 0)


def _astropy_header(
    schema: pa.Schema, lengths: Mapping[str, tuple[int, bool]]
) -> dict[bytes, bytes]:
    """astropy's Parquet header: units and descriptions (its ``table_meta_yaml``) and string
    lengths (``table::len::<col>``, from ``lengths``: :func:`_text_lengths` of every row), so
    ``Table.read`` neither scans nor fails on NULLs."""
    # astropy is imported only when a Parquet file is written: it costs ~1 s to import.
    import astropy.units as u
    from astropy.table import Column, Table
    from astropy.table import meta as astropy_meta

    out: dict[bytes, bytes] = {}
    header = Table()
    for f in schema:
        t = f.type
        meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        if _is_text(t):
            longest, nulls = lengths.get(f.name, (0, False))
            if _is_bytes(t):
                n = max(longest, 4 if nulls else 1)  # astropy reads a NULL as b"None"
                dtype = np.dtype(f"S{n}")
            else:
                n = max(max(longest, 4) if nulls else longest, 1)  # a NULL reads as "None"
                dtype = np.dtype(f"U{n}")
            out[f"table::len::{f.name}".encode()] = str(n).encode()
        else:
            try:
                dtype = np.dtype(t.to_pandas_dtype())
            except (NotImplementedError, TypeError):
                dtype = np.dtype(object)
        unit = u.Unit(meta["unit"], parse_strict="silent") if meta.get("unit") else None
        header.add_column(
            Column(np.zeros(0, dtype), name=f.name, unit=unit, description=meta.get("description"))
        )
    out[b"table_meta_yaml"] = "\n".join(astropy_meta.get_yaml_from_table(header)).encode()
    return out


def _parquet_ready(table: pa.Table) -> pa.Table:
    """Columns Parquet has no type for, as text: intervals as ISO 8601 durations, DuckDB's
    opaque integers (BIGNUM; (U)HUGEINT in lossless mode) as their exact decimal digits."""
    for i, f in enumerate(table.schema):
        if pa.types.is_interval(f.type) or _huge(f.type):
            values = _py_values(table.column(i))
            text = [None if v is None else _plain(v) for v in values]
            field = pa.field(f.name, pa.string(), metadata=f.metadata)
            table = table.set_column(i, field, pa.array(text, pa.string()))
    return table


ROW_GROUP_ROWS = 1024 * 1024
"""Rows per Parquet row group, as :func:`pyarrow.parquet.write_table` cuts a whole table."""
ROW_GROUP_BYTES = 256 * 1024 * 1024
"""A row group of a wider result is cut at this many bytes: memory holds one row group."""
RESULT_CHUNK_ROWS = 131_072
"""Rows per chunk of a whole DuckDB result (``to_arrow_table`` of DuckDB 2): the writer cuts its
pages at chunk ends too, so a streamed result is re-chunked so to write the same bytes."""


OUT_FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
"""The file formats of ``--out``, by the file name's suffix."""


def out_format(path: Path, fmt: str | None = None) -> str:
    """The format ``--out path`` writes: its suffix's (:data:`OUT_FORMATS`), else ``fmt`` (an
    explicit ``--format csv|json|jsonl``); a ``fmt`` the suffix contradicts is refused.

    >>> out_format(Path("x.json")), out_format(Path("x.txt"), "csv")
    ('json', 'csv')
    """
    by_name = OUT_FORMATS.get(path.suffix.lower())
    if by_name is None:
        if fmt in ("csv", "json", "jsonl"):
            return fmt
        raise QueryError(
            f"--out {path}: the file name must end in .csv, .parquet, .json (one JSON array of "
            "row objects) or .jsonl (JSON Lines), or give --format csv|json|jsonl"
        )
    if fmt not in (None, "table", by_name):
        raise QueryError(
            f"--out {path} writes {by_name} but --format {fmt} was given: drop --format, or "
            f"name the file .{fmt}"
        )
    return by_name


def save(
    table: pa.Table,
    path: Path,
    column_info: Mapping[str, Mapping[str, str]] | None = None,
    warehouse: Layout | None = None,
    overwrite: bool = True,
) -> None:
    """:func:`save_stream` of a table in memory."""
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    save_stream(reader, path, column_info, warehouse, overwrite=overwrite)


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Without ``overwrite``, an ``--out`` that exists is the user's file: refused."""
    if not overwrite and (path.exists() or path.is_symlink()):
        raise QueryError(
            f"--out {path} already exists; give --overwrite to replace it, or another file name."
        )


def save_stream(
    reader: pa.RecordBatchReader,
    path: Path,
    column_info: Mapping[str, Mapping[str, str]] | None = None,
    warehouse: Layout | None = None,
    fmt: str | None = None,
    overwrite: bool = True,
) -> int:
    """Write the rows of ``reader`` as ``.csv``, ``.parquet``, ``.json`` or ``.jsonl``
    (:func:`out_format`; ``fmt``, from ``--format``, for another suffix) atomically (a temporary
    file, then a rename), a batch at a time; returns the row count.

    Parquet carries ``unit``/``description`` field metadata from ``column_info`` (see
    :func:`column_metadata`) and astropy's header; intervals and DuckDB's opaque integers are
    written as text. CSV writes nested cells as JSON text; JSON is the text ``--format json``
    (or ``jsonl``) prints (:func:`~warehouse.output.formats.write_stream`). Nothing is written
    over the part of ``warehouse`` only gwh's writers change
    (:meth:`~warehouse.files.Layout.owned_part`), nor, without ``overwrite``, over a file that
    exists (``gwh sql --out`` replaced a user's file without a word; ``--overwrite`` says so).
    """
    path = Path(path)
    kind = out_format(path, fmt)
    unique_names(reader.schema.names, f"--out {path}")
    missing = missing_parent(path)
    if missing is not None:
        raise QueryError(missing)
    part = warehouse.owned_part(path) if warehouse is not None else None
    if part is not None:
        raise QueryError(
            f"--out {path} {Layout.owned_phrase(part)}, which only gwh's writers change; "
            "write it elsewhere."
        )
    refuse_existing(path, overwrite)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    spill = tmp.with_suffix(".arrow")
    try:
        if kind == "csv":
            rows = _write_csv_batches(reader, str(tmp))
        elif kind in ("json", "jsonl"):
            with open(tmp, "w", encoding="utf-8", newline="\n") as text:
                rows = write_stream(reader, kind, text.write)
                if kind == "jsonl" and not rows:
                    text.truncate(0)  # no rows: no lines (stdout prints an empty one)
        else:
            rows = _write_parquet(reader, tmp, column_info or {}, spill, path)
        os.replace(tmp, path)
    except OSError as exc:
        full = out_of_room(exc, path.parent)  # a full disk, a quota, ulimit -f: make room
        if full is not None:
            raise full from None
        raise QueryError(
            f"--out {path}: {exc.strerror or exc}; choose a folder you can write."
        ) from None
    finally:
        for f in (tmp, spill):
            if f.exists():
                f.unlink()
    return rows


def _write_parquet(
    reader: pa.RecordBatchReader,
    tmp: Path,
    info: Mapping[str, Mapping[str, str]],
    spill: Path,
    path: Path,
) -> int:
    """The Parquet file of :func:`save_stream`: the bytes ``pq.write_table`` gives for the whole
    result (each row group as it cuts them), with astropy's header unless a column is nested."""

    def ready(batch: pa.RecordBatch | pa.Table) -> pa.Table:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        return with_metadata(_parquet_ready(table), info)

    schema = ready(reader.schema.empty_table()).schema
    meta = dict(schema.metadata or {})
    tables: Iterator[pa.Table] = (ready(b) for b in reader)
    header = not any(_is_nested(f.type) or isinstance(f.type, pa.BaseExtensionType) for f in schema)
    lengths: dict[str, tuple[int, bool]] = {}
    if header and any(_is_text(f.type) for f in schema):  # the longest values first
        with pa.OSFile(str(spill), "wb") as sink, pa.ipc.new_file(sink, schema) as ipc:
            for table in tables:
                _text_lengths(table, lengths)
                ipc.write_table(table)
        tables = _read_spill(spill)
    if header:
        meta.update(_astropy_header(schema, lengths))
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema.with_metadata(meta), compression="snappy") as writer:
            for group in _row_groups(tables, schema):
                writer.write_table(group)
                rows += group.num_rows
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:
        raise QueryError(
            f"--out {path}: Parquet cannot hold a column of this result ({exc}); cast it "
            "in the SQL (e.g. CAST(x AS VARCHAR)) or write .csv."
        ) from None
    return rows


def _read_spill(spill: Path) -> Iterator[pa.Table]:
    with pa.OSFile(str(spill), "rb") as source:
        ipc = pa.ipc.open_file(source)
        for i in range(ipc.num_record_batches):
            yield pa.Table.from_batches([ipc.get_batch(i)])


def _row_groups(tables: Iterator[pa.Table], schema: pa.Schema) -> Iterator[pa.Table]:
    """``tables`` regrouped as row groups of :data:`ROW_GROUP_ROWS` rows (the last one shorter),
    cut sooner when one would pass :data:`ROW_GROUP_BYTES`; one empty table for no rows."""
    held: list[pa.Table] = []
    rows = nbytes = start = 0
    for table in tables:
        held.append(table)
        rows += table.num_rows
        nbytes += table.nbytes
        while rows >= ROW_GROUP_ROWS or (nbytes >= ROW_GROUP_BYTES and rows):
            whole = pa.concat_tables(held)
            cut = min(rows, ROW_GROUP_ROWS)
            yield _chunked_as_a_result(whole.slice(0, cut), start)
            start += cut
            rest = whole.slice(cut)
            held, rows, nbytes = [rest], rest.num_rows, rest.nbytes
    if rows or not start:
        yield _chunked_as_a_result(pa.concat_tables(held), start) if held else schema.empty_table()


def _chunked_as_a_result(group: pa.Table, start: int) -> pa.Table:
    """Rows ``start`` on of a result, in one chunk per :data:`RESULT_CHUNK_ROWS` of the result."""
    pieces, at = [], 0
    while at < group.num_rows:
        end = min(
            group.num_rows, ((start + at) // RESULT_CHUNK_ROWS + 1) * RESULT_CHUNK_ROWS - start
        )
        pieces.append(group.slice(at, end - at).combine_chunks())
        at = end
    return pa.concat_tables(pieces) if pieces else group
