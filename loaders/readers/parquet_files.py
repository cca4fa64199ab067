"""Parquet exports: whole, or by chunks of whole row groups (so a load holds one chunk)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from loaders.readers.common import (
    SourceTable,
    TypeFor,
    cast_declared,
    check_names,
    one_line,
)
from warehouse.errors import LoadError


def read_parquet(path: Path) -> pa.Table:
    try:  # ParquetFile, not read_table: no pyarrow.dataset (and pandas) import for one file
        table = pq.ParquetFile(path).read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise LoadError(
            f"{path} is unreadable or truncated as Parquet ({one_line(exc)}). Write it again."
        ) from None
    names = check_names(table.column_names, path)
    return table.rename_columns(names)


def parquet_rows(path: Path) -> int | None:
    """Rows of a Parquet file from its footer (None: not a readable Parquet file)."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowInvalid, OSError):
        return None


def read_parquet_chunks(path: Path, type_for: TypeFor, rows: int) -> Iterator[SourceTable]:
    """A Parquet file ``rows`` rows at a time, as :func:`read_table` reads it whole (names
    normalised, declared types, rows numbered in the file), so a load holds one chunk."""
    path = Path(path)
    try:
        pf = pq.ParquetFile(path)
        names = check_names(pf.schema_arrow.names, path)
        offset = 0
        for raw in _parquet_parts(pf, rows):
            table = raw.rename_columns(names)
            table = cast_declared(table, type_for, path, row_offset=offset + 1, row_word="row")
            yield SourceTable(path, table, offset + 1, "row")
            offset += table.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise LoadError(
            f"{path} is unreadable or truncated as Parquet ({one_line(exc)}). Write it again."
        ) from None


def _parquet_parts(pf: pq.ParquetFile, rows: int) -> Iterator[pa.Table]:
    """Whole row groups up to ``rows`` rows at a time (read_row_groups holds far less memory
    than iter_batches); a row group larger than that in slices of ``rows``."""
    group: list[int] = []
    size = 0
    for i in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(i).num_rows
        if group and size + n > rows:
            yield pf.read_row_groups(group)
            group, size = [], 0
        if n > rows:
            for batch in pf.iter_batches(batch_size=rows, row_groups=[i]):
                yield pa.Table.from_batches([batch])
            continue
        group.append(i)
        size += n
    if group:
        yield pf.read_row_groups(group)
