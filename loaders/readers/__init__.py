"""Every failure is a :class:`~warehouse.errors.LoadError` naming the file and, where there is one,
the column and row (CSV rows are counted as lines of the file, FITS and Parquet rows from 1).
64-bit identifiers are parsed as integers straight from the text or the binary column, never
through float64.

The readers, one module per format (``csv_files``, ``fits_files``, ``parquet_files``), share
``common``; :func:`read_table` picks one by the file's suffix.
"""

from __future__ import annotations

from pathlib import Path

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
from loaders.readers.csv_files import read_csv
from loaders.readers.fits_files import read_fits
from loaders.readers.parquet_files import (
    parquet_rows,
    read_parquet,
    read_parquet_chunks,
    read_parquet_column,
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
    "read_parquet_column",
    "read_table",
    "to_csv_bytes",
]


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
    suffix = (
        "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    )
    if suffix in (".fits", ".fit", ".fits.gz", ".fz"):
        table = read_fits(path, required)
    elif suffix in (".csv", ".csv.gz", ".txt"):
        table, header_line = read_csv(path, type_for)
        return SourceTable(path, table, header_line + 1, "line")
    elif suffix in (".parquet", ".pq"):
        table = read_parquet(path)
    else:
        raise LoadError(
            f"{path}: unknown file type {suffix or '(none)'}; "
            "give a .fits, .csv or .parquet export."
        )
    return SourceTable(
        path, cast_declared(table, type_for, path, row_offset=1, row_word="row"), 1, "row"
    )
