"""Printing and saving query results: aligned text tables, CSV, JSON, Parquet.

64-bit integers are printed from their integer values (never through float), so object_ids
survive every format.
"""

from __future__ import annotations

import io
import json
import math
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from warehouse.errors import QueryError

FORMATS = ("table", "csv", "json")


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def format_table(table: pa.Table, max_rows: int | None = 100) -> str:
    """An aligned text table; numbers right-aligned, at most ``max_rows`` rows shown."""
    shown = table if max_rows is None else table.slice(0, max_rows)
    names = table.column_names
    cols = [[_cell(v) for v in shown.column(i).to_pylist()] for i in range(len(names))]
    numeric = [
        pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type)
        for f in table.schema
    ]
    widths = [max([len(n)] + [len(c) for c in col]) for n, col in zip(names, cols, strict=True)]
    lines = [
        "  ".join(
            n.rjust(w) if num else n.ljust(w)
            for n, w, num in zip(names, widths, numeric, strict=True)
        ),
        "  ".join("-" * w for w in widths),
    ]
    for r in range(shown.num_rows):
        lines.append(
            "  ".join(
                cols[c][r].rjust(widths[c]) if numeric[c] else cols[c][r].ljust(widths[c])
                for c in range(len(names))
            ).rstrip()
        )
    n = table.num_rows
    if shown.num_rows < n:
        lines.append(
            f"({n:,} rows, first {shown.num_rows} shown; use --format csv or --out FILE for all)"
        )
    else:
        lines.append(f"({n:,} row{'s' if n != 1 else ''})")
    return "\n".join(lines)


def format_csv(table: pa.Table) -> str:
    buf = io.BytesIO()
    pcsv.write_csv(table, buf, write_options=pcsv.WriteOptions(quoting_style="needed"))
    return buf.getvalue().decode("utf-8")


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    return value


def format_json(table: pa.Table) -> str:
    """One JSON object per row (JSON Lines). Integers stay exact; NaN becomes null."""
    rows = table.to_pylist()
    return "\n".join(
        json.dumps({k: _json_value(v) for k, v in row.items()}, allow_nan=False) for row in rows
    )


def render(table: pa.Table, fmt: str, max_rows: int | None = 100) -> str:
    if fmt == "table":
        return format_table(table, max_rows)
    if fmt == "csv":
        return format_csv(table).rstrip("\n")
    if fmt == "json":
        return format_json(table)
    raise QueryError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def save(table: pa.Table, path: Path) -> None:
    """Write ``.csv`` or ``.parquet`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise QueryError(f"--out {path}: the file name must end in .csv or .parquet")
    if path.parent and not path.parent.exists():
        raise QueryError(f"--out {path}: folder {path.parent} does not exist; create it first.")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if suffix == ".csv":
            pcsv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp, compression="snappy")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
