"""Query results as the tools astronomers use: pandas DataFrames and astropy Tables with units.

:class:`~warehouse.core.Warehouse` exposes these as ``query_df``, ``query_table`` and
``export``; every query goes through :meth:`Warehouse.query` (one read-only statement).

Examples
--------
>>> from warehouse import Warehouse
>>> wh = Warehouse.open("gwh-demo/warehouse")  # doctest: +SKIP
>>> t = wh.query_table("select object_id, ra, i_cmodel_mag from ml_objects limit 3")
... # doctest: +SKIP
>>> t["i_cmodel_mag"].unit  # doctest: +SKIP
Unit("mag")
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from warehouse.errors import QueryError
from warehouse.explain import damaged_read, explain_error
from warehouse.export import ExportOptions, ExportResult, export_hdf5
from warehouse.lineage import column_units, one_unit, tables_named
from warehouse.readonly import check_read_only

if TYPE_CHECKING:
    import pandas
    from astropy.table import Table

    from warehouse.core import Warehouse

__all__ = [
    "export",
    "first_rows",
    "open_stream",
    "preview",
    "query_df",
    "query_table",
    "stream",
    "to_astropy",
    "units_of",
]


def units_of(wh: Warehouse, table: pa.Table, sources: Sequence[str] = ()) -> dict[str, str]:
    """``{column: unit}`` for a result's columns: each column's own ``unit`` field metadata,
    else the unit of the column of the same name in the base tables ``sources`` (a name whose
    tables disagree gets none)."""
    known: dict[str, set[str]] = {}
    for source in sources:
        for name, unit in column_units(wh, source).items():
            known.setdefault(name, set()).add(unit)
    out = {}
    for f in table.schema:
        raw = (f.metadata or {}).get(b"unit")
        units = known.get(f.name.lower(), set())
        if raw:
            out[f.name] = raw.decode()
        elif units and one_unit(units):
            out[f.name] = next(iter(units))
    return out


def to_astropy(table: pa.Table, units: Mapping[str, str] | None = None) -> Table:
    """An astropy Table of an Arrow table; NULLs become masked values, ``units`` set each
    column's unit (a unit astropy does not parse is kept as an unrecognised unit, not dropped).
    """
    import warnings

    import numpy as np
    from astropy import units as u
    from astropy.table import MaskedColumn, Table

    out = Table()
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            values = col.to_numpy(zero_copy_only=False)
            if col.null_count:
                filled = col.fill_null(0).to_numpy(zero_copy_only=False)
                values = MaskedColumn(filled, mask=np.asarray(col.is_null()), name=name)
        elif pa.types.is_boolean(col.type):
            values = MaskedColumn(
                np.asarray(col.fill_null(False)), mask=np.asarray(col.is_null()), name=name
            )
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            values = MaskedColumn(
                np.array(col.fill_null("").to_pylist(), dtype=str),
                mask=np.asarray(col.is_null()),
                name=name,
            )
        else:  # timestamps, lists, structs, blobs: Python objects
            values = np.array(col.to_pylist(), dtype=object)
        out[name] = values
        unit = (units or {}).get(name)
        if unit:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", u.UnitsWarning)
                out[name].unit = u.Unit(unit, parse_strict="silent")
    return out


def preview(wh: Warehouse, sql: str, max_rows: int) -> tuple[pa.Table, int]:
    """The first ``max_rows`` rows of one read-only statement and how many rows it has, read
    as a stream: memory holds the rows shown, not the result (``gwh sql``'s table format)."""
    with open_stream(wh, sql) as reader:
        return first_rows(reader, max_rows)


@contextlib.contextmanager
def open_stream(
    wh: Warehouse, sql: str, batch_rows: int = 65_536
) -> Iterator[pa.RecordBatchReader]:
    """The rows of one read-only statement as a stream of batches (see :func:`stream`), read
    while the context is open: ``gwh sql``'s formats and ``--out`` never hold the result."""
    statement = check_read_only(sql)
    with wh.connect(shared=True) as con:  # a Ctrl-C stops it (Warehouse.connect)
        yield stream(con, statement, batch_rows)


def stream(
    con: duckdb.DuckDBPyConnection, statement: str, batch_rows: int = 65_536
) -> pa.RecordBatchReader:
    """The rows of ``statement`` (already checked) as batches of about ``batch_rows`` rows.

    The one place an error DuckDB raises for a query is explained, whether it comes at once
    or after the first batches (then as pyarrow's ``OSError``/``ArrowException``): a
    :class:`QueryError` (a damaged file named as such). A cancellation passes through as it
    came (``duckdb.InterruptException``, ``KeyboardInterrupt``, ``RuntimeError``).
    """
    try:
        reader = con.sql(statement).to_arrow_reader(batch_rows)
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        raise QueryError(explain_error(exc, con, statement)) from None

    def batches() -> Iterator[pa.RecordBatch]:
        it = iter(reader)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except duckdb.InterruptException:
                raise
            except duckdb.Error as exc:
                raise QueryError(explain_error(exc, con, statement)) from None
            except (OSError, pa.ArrowException) as exc:  # DuckDB's error after the first batches
                raise QueryError(damaged_read(exc, con) or str(exc).strip()) from None
            yield batch

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def first_rows(reader: pa.RecordBatchReader, max_rows: int | None) -> tuple[pa.Table, int]:
    """The first ``max_rows`` rows of a stream (all of them when None) and how many it had."""
    kept, total = [], 0
    for batch in reader:
        if max_rows is None or total < max_rows:
            kept.append(batch if max_rows is None else batch.slice(0, max_rows - total))
        total += batch.num_rows
    return pa.Table.from_batches(kept, schema=reader.schema), total


def query_df(wh: Warehouse, sql: str, params: Sequence[Any] | None = None) -> pandas.DataFrame:
    """The result of one read-only statement as a pandas DataFrame. Integer and boolean
    columns use pandas' nullable dtypes (``Int64``, ``boolean``): a NULL stays ``<NA>`` and a
    64-bit id stays exact instead of turning into a float; a NULL float is NaN."""
    import pandas as pd

    nullable = {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(),
        pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    return wh.query(sql, params).to_pandas(types_mapper=nullable.get)


def query_table(wh: Warehouse, sql: str, params: Sequence[Any] | None = None) -> Table:
    """The result of one read-only statement as an astropy Table, with units from the stored
    field metadata of the tables the statement names (:func:`units_of`): a result column takes
    the unit of the table column of the same name."""
    result = wh.query(sql, params)
    return to_astropy(result, units_of(wh, result, tables_named(sql)))


def export(
    wh: Warehouse,
    out: str | os.PathLike[str],
    *,
    split: str | None = None,
    view: str | None = None,
    sql: str | None = None,
    progress: bool | None = None,
    **options: Any,
) -> ExportResult:
    """Write HDF5 in the GalaxiesML layout (:func:`warehouse.export.export_hdf5`); ``options``
    are the fields of :class:`~warehouse.export.ExportOptions` (``size``, ``bands``,
    ``overwrite``, ...)."""
    return export_hdf5(
        wh,
        out,
        split=split,
        view=view,
        sql=sql,
        options=ExportOptions(**options),
        progress=progress,
    )
