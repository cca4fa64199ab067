"""What every reader shares: the declared types, the table a reader returns, column names,
and casting to the declared types with the first bad value named."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from warehouse.errors import LoadError
from warehouse.store.versions import first_not_boolean

TRUE_VALUES = ["t", "true", "True", "TRUE", "T", "1"]
FALSE_VALUES = ["f", "false", "False", "FALSE", "F", "0"]
# Missing values as archives write them. "NaN"/"nan" stay NaN (a failed measurement), not NULL.
NULL_VALUES = ["", "NULL", "null", "\\N", "None"]

TypeFor = Callable[[str], "pa.DataType | None"]


@dataclass(frozen=True)
class SourceTable:
    """A table read from a file, with how to name its rows in messages."""

    path: Path
    table: pa.Table
    first_row: int  # line (CSV) or row (FITS, Parquet) number of the table's row 0
    row_word: str

    def where(self, index: int) -> str:
        return f"{self.path}, {self.row_word} {self.first_row + int(index)}"


def one_line(exc: BaseException) -> str:
    """A library's exception text on one line (astropy and h5py messages span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def normalise_name(name: str) -> str:
    """Archive column names as the warehouse stores them: ``"dec"`` → ``dec``, lower case."""
    return name.strip().strip('"').strip().lower()


def check_names(names: list[str], path: Path) -> list[str]:
    out = [normalise_name(n) for n in names]
    seen: set[str] = set()
    for n in out:
        if not n:
            raise LoadError(f"{path}: a column has an empty name. Fix the header.")
        if n in seen:
            raise LoadError(f"{path}: column {n} appears twice. Remove one of them.")
        seen.add(n)
    return out


def cast_declared(
    table: pa.Table, type_for: TypeFor, path: Path, row_offset: int, row_word: str
) -> pa.Table:
    """Cast columns to their declared types, naming the first value that does not fit."""
    columns = []
    for name in table.column_names:
        col = table.column(name)
        want = type_for(name)
        if want is None or col.type == want:
            columns.append(col)
            continue
        if pa.types.is_integer(want) and pa.types.is_floating(col.type):
            raise LoadError(
                f"{path}: column {name} is stored as {col.type}, but it holds 64-bit integers "
                "that floating point cannot hold exactly. Re-export it as an integer column."
            )
        if pa.types.is_boolean(want) and (bad := first_not_boolean(col)) is not None:
            raise LoadError(
                f"{path}, {row_word} {bad + row_offset}, column {name}: {col[bad].as_py()!r} is "
                f"not a valid bool (the column is {col.type}; only 0 and 1 are). Fix the value "
                "or re-export the file."
            )
        try:
            columns.append(col.cast(want))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            arr = col.combine_chunks()
            bad = _first_bad(arr, want)
            value = arr[bad].as_py() if bad is not None else "?"
            where = f", {row_word} {bad + row_offset}" if bad is not None else ""
            raise LoadError(
                f"{path}{where}, column {name}: {value!r} is not a valid {want} "
                f"(the column is {col.type}). Fix the value or re-export the file."
            ) from None
    return pa.Table.from_arrays(columns, names=table.column_names)


def _first_bad(arr: pa.Array, want: pa.DataType) -> int | None:
    if pa.types.is_string(arr.type) and pa.types.is_boolean(want):
        ok = pc.is_in(arr, value_set=pa.array(TRUE_VALUES + FALSE_VALUES))
        bad = np.flatnonzero(
            ~ok.to_numpy(zero_copy_only=False) & arr.is_valid().to_numpy(zero_copy_only=False)
        )
        return int(bad[0]) if bad.size else None
    for i in range(len(arr)):
        try:
            arr.slice(i, 1).cast(want)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return i
    return None


def to_csv_bytes(table: pa.Table) -> bytes:
    """CSV text of a table (used by tests and the demo to write archive-like exports)."""
    buf = io.BytesIO()
    pcsv.write_csv(table, buf)
    return buf.getvalue()
