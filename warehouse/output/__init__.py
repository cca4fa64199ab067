"""Printing and saving query results: aligned text tables, CSV, JSON, JSON Lines, Parquet.

What each format promises
-------------------------
* 64-bit integers (and DuckDB's HUGEINT/UHUGEINT) are written from their integer values, never
  through a float, so object_ids survive every format. In JSON they are JSON integers.
* ``json`` is one JSON array of row objects; ``jsonl`` is JSON Lines (one object per line).
  Every line/document is strict JSON (RFC 8259): a NULL is ``null``; the float values NaN, +inf
  and -inf, which JSON numbers cannot hold, are the strings ``"nan"``, ``"inf"`` and ``"-inf"``
  (``float(s)`` reads each back); DECIMAL is a JSON number with its exact decimal digits; dates,
  times and timestamps are ISO 8601 strings; intervals ISO 8601 durations; BLOBs hex strings;
  lists are arrays, structs objects, maps objects with their keys as text.
* ``--out x.json`` / ``x.jsonl`` (``.ndjson``) write the text ``json`` / ``jsonl`` prints.
* ``csv`` (and ``--out x.csv``) writes a list, struct or map cell as its JSON text (above).
* ``table`` fits the terminal width (``COLUMNS`` or the terminal's): columns that do not fit are
  hidden from the middle, as the DuckDB CLI does, and the footer says how many. Floats print in
  the shortest form that reads back to the same value at their own precision (float32 as float32).
* Parquet (``--out x.parquet``) carries each column's ``unit`` and ``description`` as Arrow field
  metadata, and the same in astropy's header (``table_meta_yaml``), so
  ``astropy.table.Table.read`` shows units; pandas and pyarrow read NULLs as NULLs. Astropy's
  Parquet reader has no NULLs: a NULL integer reads as NaN and a NULL string as the text ``None``.
"""

from warehouse.errors import QueryError as QueryError  # `output.QueryError`, as before the split
from warehouse.output.formats import (
    FORMATS,
    format_csv,
    format_json,
    format_jsonl,
    format_table,
    print_stream,
    render,
    terminal_width,
    write_stream,
)
from warehouse.output.formats import MAX_CELL as MAX_CELL
from warehouse.output.saving import column_metadata, save, save_stream, with_metadata

__all__ = [
    "FORMATS",
    "column_metadata",
    "format_csv",
    "format_json",
    "format_jsonl",
    "format_table",
    "print_stream",
    "render",
    "save",
    "save_stream",
    "terminal_width",
    "with_metadata",
    "write_stream",
]
