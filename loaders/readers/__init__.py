"""Every failure is a :class:`~warehouse.errors.LoadError` naming the file and, where there is one,
the column and row (CSV rows are counted as lines of the file, FITS and Parquet rows from 1).
64-bit identifiers are parsed as integers straight from the text or the binary column, never
through float64.

The readers, one module per format (``csv_files``, ``fits_files``, ``parquet_files``), share
``common``; :func:`read_table` picks one by the file's suffix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from loaders.readers.common import (
    FALSE_VALUES,
    NULL_VALUES,
    TRUE_VALUES,
    SourceTable,
    TypeFor,
    cast_declared,
    check_names,
    normalise_name,
    one_line,
    to_csv_bytes,
)
from loaders.readers.csv_files import csv_shape, read_csv, read_csv_chunks
from loaders.readers.fits_files import fits_rows, read_fits, read_fits_chunks
from loaders.readers.parquet_files import (
    parquet_rows,
    read_parquet,
    read_parquet_chunks,
)
from warehouse.errors import LoadError

__all__ = [
    "FALSE_VALUES",
    "NULL_VALUES",
    "TRUE_VALUES",
    "SourceTable",
    "TypeFor",
    "cast_declared",
    "check_names",
    "normalise_name",
    "one_line",
    "parquet_rows",
    "read_parquet_chunks",
    "read_table",
    "read_table_chunks",
    "table_shape",
    "to_csv_bytes",
]


def _suffix(path: Path) -> str:
    return (
        "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    )


FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fz")
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


def table_shape(path: Path, required: tuple[str, ...] = ()) -> tuple[int, set[str]] | None:
    """Rows and normalised column names of a Parquet or FITS export, from its footer or
    header, without reading the data, or of a CSV export (rows: at most, from one pass over
    its bytes that checks it) (None: another format, or unreadable: read it whole, which says
    what is wrong)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix in CSV_SUFFIXES:
        try:
            rows, names = csv_shape(path)
        except LoadError:
            return None
        return rows, set(names)
    if suffix in PARQUET_SUFFIXES:
        counted = parquet_rows(path)
        if counted is None:
            return None
        return counted, {normalise_name(n) for n in pq.ParquetFile(path).schema_arrow.names}
    if suffix in (".fits", ".fit"):  # compressed FITS cannot be memory-mapped
        shape = fits_rows(path, required)
        return None if shape is None else (shape[0], set(shape[1]))
    return None


def read_table_chunks(
    path: Path, type_for: TypeFor, rows: int, required: tuple[str, ...] = ()
) -> Iterator[SourceTable]:
    """A Parquet, CSV or (uncompressed) FITS export ``rows`` rows at a time, each as
    :func:`read_table` reads the file whole (names normalised, declared types, rows numbered
    in the file), so a load holds one chunk. Any other file: whole, in one piece."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix in CSV_SUFFIXES:
        for table, first_line in read_csv_chunks(path, type_for, rows):
            yield SourceTable(path, table, first_line, "line")
        return
    if suffix in PARQUET_SUFFIXES:
        yield from read_parquet_chunks(path, type_for, rows)
        return
    if suffix not in (".fits", ".fit"):
        yield read_table(path, type_for, required)
        return
    offset = 0
    for table in read_fits_chunks(path, required, rows):
        first = offset + 1
        table = cast_declared(table, type_for, path, row_offset=first, row_word="row")
        yield SourceTable(path, table, first, "row")
        offset += table.num_rows


def read_table(path: Path, type_for: TypeFor, required: tuple[str, ...] = ()) -> SourceTable:
    """Read ``path`` by its suffix; ``type_for(column)`` gives the declared type or None.

    ``required`` names the columns the loader needs: in a FITS file with several table HDUs,
    the one table holding all of them is read (see :func:`read_fits`).
    """
    path = Path(path)
    if not path.exists():
        raise LoadError(f"{path}: no such file. Check the path.")
    if path.is_dir():
        raise LoadError(f"{path} is a folder; give the export file itself.")
    suffix = _suffix(path)
    if suffix in FITS_SUFFIXES:
        table = read_fits(path, required)
    elif suffix in CSV_SUFFIXES:
        table, header_line = read_csv(path, type_for)
        return SourceTable(path, table, header_line + 1, "line")
    elif suffix in PARQUET_SUFFIXES:
        table = read_parquet(path)
    else:
        raise LoadError(
            f"{path}: unknown file type {suffix or '(none)'}; give an export as "
            f"{', '.join(FITS_SUFFIXES + CSV_SUFFIXES + PARQUET_SUFFIXES)}."
        )
    return SourceTable(
        path, cast_declared(table, type_for, path, row_offset=1, row_word="row"), 1, "row"
    )
