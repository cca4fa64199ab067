"""Query results as files: ``--out x.csv`` or ``x.parquet`` written atomically, Parquet with
each column's unit and description (Arrow field metadata and astropy's header)."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.errors import QueryError
from warehouse.files import Layout
from warehouse.output.formats import _huge, _is_nested, _plain, _py_values, _write_csv
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
    return {
        n: {k: next(iter(v)) for k, v in keys.items() if len(v) == 1} for n, keys in seen.items()
    }


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


def _astropy_header(table: pa.Table) -> dict[bytes, bytes]:
    """astropy's Parquet header: units and descriptions (its ``table_meta_yaml``) and string
    lengths (``table::len::<col>``), so ``Table.read`` neither scans nor fails on NULLs."""
    # astropy is imported only when a Parquet file is written: it costs ~1 s to import.
    import astropy.units as u
    from astropy.table import Column, Table
    from astropy.table import meta as astropy_meta

    out: dict[bytes, bytes] = {}
    header = Table()
    for f in table.schema:
        t = f.type
        meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            col = table.column(f.name)
            lengths = [len(v) for v in col.to_pylist() if v is not None]
            n = max(lengths, default=0)
            if col.null_count:
                n = max(n, 4)  # astropy reads a NULL as the text "None"
            out[f"table::len::{f.name}".encode()] = str(max(n, 1)).encode()
            dtype = np.dtype(f"U{max(n, 1)}")
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            col = table.column(f.name)
            n = max((len(v) for v in col.to_pylist() if v is not None), default=0)
            n = max(n, 4 if col.null_count else 1)  # astropy reads a NULL as b"None"
            out[f"table::len::{f.name}".encode()] = str(n).encode()
            dtype = np.dtype(f"S{n}")
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


def save(
    table: pa.Table,
    path: Path,
    column_info: Mapping[str, Mapping[str, str]] | None = None,
    warehouse: Layout | None = None,
) -> None:
    """Write ``.csv`` or ``.parquet`` atomically (a temporary file, then a rename).

    Parquet carries ``unit``/``description`` field metadata from ``column_info`` (see
    :func:`column_metadata`) and astropy's header; intervals and DuckDB's opaque integers are
    written as text. CSV writes nested cells as JSON text. Nothing is written over the part of
    ``warehouse`` only gwh's writers change (:meth:`~warehouse.files.Layout.owned_part`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise QueryError(f"--out {path}: the file name must end in .csv or .parquet")
    if path.parent and not path.parent.exists():
        raise QueryError(f"--out {path}: folder {path.parent} does not exist; create it first.")
    part = warehouse.owned_part(path) if warehouse is not None else None
    if part is not None:
        where = "holds the warehouse" if part == "." else f"is inside the warehouse's {part}"
        raise QueryError(
            f"--out {path} {where}, which only gwh's writers change (it could replace a "
            "table's data file); write it elsewhere."
        )
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if suffix == ".csv":
            _write_csv(table, tmp)
        else:
            table = with_metadata(_parquet_ready(table), column_info or {})
            meta = dict(table.schema.metadata or {})
            if not any(
                _is_nested(f.type) or isinstance(f.type, pa.BaseExtensionType) for f in table.schema
            ):
                meta.update(_astropy_header(table))
            try:
                pq.write_table(table.replace_schema_metadata(meta), tmp, compression="snappy")
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:
                raise QueryError(
                    f"--out {path}: Parquet cannot hold a column of this result ({exc}); cast it "
                    "in the SQL (e.g. CAST(x AS VARCHAR)) or write .csv."
                ) from None
        os.replace(tmp, path)
    except OSError as exc:
        raise QueryError(
            f"--out {path}: {exc.strerror or exc}; choose a folder you can write."
        ) from None
    finally:
        if tmp.exists():
            tmp.unlink()
