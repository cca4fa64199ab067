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
* ``csv`` (and ``--out x.csv``) writes a list, struct or map cell as its JSON text (above).
* ``table`` fits the terminal width (``COLUMNS`` or the terminal's): columns that do not fit are
  hidden from the middle, as the DuckDB CLI does, and the footer says how many. Floats print in
  the shortest form that reads back to the same value at their own precision (float32 as float32).
* Parquet (``--out x.parquet``) carries each column's ``unit`` and ``description`` as Arrow field
  metadata, and the same in astropy's header (``table_meta_yaml``), so
  ``astropy.table.Table.read`` shows units; pandas and pyarrow read NULLs as NULLs. Astropy's
  Parquet reader has no NULLs: a NULL integer reads as NaN and a NULL string as the text ``None``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import io
import json
import math
import os
import shutil
import textwrap
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from warehouse.errors import QueryError

FORMATS = ("table", "csv", "json", "jsonl")
MAX_CELL = 40  # characters of one text cell in --format table before it is cut with "…"
_GAP = "  "


# --------------------------------------------------------------------------- cells


def _is_nested(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_struct(t)
        or pa.types.is_map(t)
        or pa.types.is_union(t)
    )


def _huge(t: pa.DataType) -> str | None:
    """``hugeint``, ``uhugeint`` or ``bignum`` when ``t`` is one of DuckDB's opaque Arrow
    integer extensions (BIGNUM always; (U)HUGEINT with ``arrow_lossless_conversion``)."""
    if isinstance(t, pa.BaseExtensionType):
        name = getattr(t, "type_name", "")
        if name in ("hugeint", "uhugeint", "bignum"):
            return name
    return None


def _bignum(raw: bytes) -> int:
    """DuckDB's BIGNUM bytes: a 3-byte header whose top bit is set for numbers >= 0, then the
    big-endian magnitude; a negative number has every byte inverted."""
    if raw[0] & 0x80:
        return int.from_bytes(raw[3:], "big")
    return -int.from_bytes(bytes(x ^ 0xFF for x in raw[3:]), "big")


def _py_values(arr: pa.ChunkedArray | pa.Array) -> list:
    """Python values of a column; DuckDB's opaque integers become Python ints."""
    kind = _huge(arr.type)
    if kind is None:
        return arr.to_pylist()
    storage = arr.storage if isinstance(arr, pa.ExtensionArray) else None
    chunks = [storage] if storage is not None else [c.storage for c in arr.chunks]
    if kind == "bignum":
        return [None if b is None else _bignum(b) for c in chunks for b in c.to_pylist()]
    signed = kind == "hugeint"
    return [
        None if b is None else int.from_bytes(b, "little", signed=signed)
        for chunk in chunks
        for b in chunk.to_pylist()
    ]


def _duration(value: object) -> str:
    """ISO 8601 duration of a DuckDB INTERVAL (months, days, nanoseconds) or a timedelta."""
    if isinstance(value, dt.timedelta):
        months, days, nanos = 0, value.days, (value.seconds * 10**6 + value.microseconds) * 1000
    else:
        months, days, nanos = value.months, value.days, value.nanoseconds  # type: ignore[attr-defined]
    seconds = decimal.Decimal(nanos) / 10**9
    text = "P" + (f"{months}M" if months else "") + (f"{days}D" if days else "")
    if seconds or text == "P":
        text += f"T{format(seconds.normalize(), 'f')}S"
    return text


def _json_text(value: object) -> str:
    """Strict JSON text of one Python value as pyarrow gives it (see the module docstring)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)  # exact, however large
    if isinstance(value, float):
        if math.isnan(value):
            return '"nan"'
        if math.isinf(value):
            return '"inf"' if value > 0 else '"-inf"'
        return repr(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():  # pragma: no cover - DuckDB decimals are finite
            return json.dumps(str(value).lower())
        return format(value, "f")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return json.dumps(bytes(value).hex())
    if isinstance(value, uuid.UUID):
        return json.dumps(str(value))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return json.dumps(value.isoformat())
    if isinstance(value, dt.timedelta) or hasattr(value, "nanoseconds"):
        return json.dumps(_duration(value))
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{json.dumps(str(k))}: {_json_text(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    return json.dumps(str(value))


def _unmap(value: object, t: pa.DataType) -> object:
    """pyarrow gives a MAP as a list of (key, value) pairs; JSON writes it as an object."""
    if value is None:
        return None
    if pa.types.is_map(t):
        return {
            (k if isinstance(k, str) else _plain(k)): _unmap(v, t.item_type)
            for k, v in value  # type: ignore[attr-defined]
        }
    if pa.types.is_struct(t):
        return {f.name: _unmap(value[f.name], f.type) for f in t}  # type: ignore[index]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [_unmap(v, t.value_type) for v in value]  # type: ignore[attr-defined]
    return value


def _plain(value: object) -> str:
    text = _json_text(value)
    return json.loads(text) if text.startswith('"') else text


def _single(value: object) -> object:
    """A float32 value as the double whose repr is the float32's shortest text (0.1, not
    0.10000000149011612): reading that text back as float32 gives the same value."""
    if isinstance(value, float) and math.isfinite(value):
        return float(str(np.float32(value)))
    return value


def _columns(table: pa.Table) -> list[list]:
    """Python values of each column: maps as dicts, float32 at its own precision."""
    out = []
    for i, f in enumerate(table.schema):
        values = _py_values(table.column(i))
        if _is_nested(f.type):
            values = [_unmap(v, f.type) for v in values]
        elif pa.types.is_float32(f.type) or pa.types.is_float16(f.type):
            values = [_single(v) for v in values]
        out.append(values)
    return out


def _rows_json(table: pa.Table) -> Iterable[str]:
    names = [json.dumps(n, ensure_ascii=False) for n in table.column_names]
    cols = _columns(table)
    for r in range(table.num_rows):
        yield (
            "{"
            + ", ".join(f"{n}: {_json_text(c[r])}" for n, c in zip(names, cols, strict=True))
            + "}"
        )


def format_json(table: pa.Table) -> str:
    """A JSON array of row objects, one row per line.

    >>> format_json(pa.table({"id": [2**62 + 1], "x": [float("inf")]}))
    '[\\n{"id": 4611686018427387905, "x": "inf"}\\n]'
    """
    rows = list(_rows_json(table))
    return "[\n" + ",\n".join(rows) + "\n]" if rows else "[]"


def format_jsonl(table: pa.Table) -> str:
    """JSON Lines: one row object per line (nothing for no rows)."""
    return "\n".join(_rows_json(table))


# --------------------------------------------------------------------------- text table


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)  # shortest round trip; float32 columns arrive through _single


def _cell(value: object, t: pa.DataType) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, (bytes, bytearray)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dt.timedelta) or hasattr(value, "nanoseconds"):
        return _duration(value)  # an INTERVAL (a named tuple: test it before tuples)
    if isinstance(value, (dict, list, tuple)):
        return _json_text(value)
    return str(value)


def _cut(text: str, limit: int = MAX_CELL) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def terminal_width() -> int:
    """``COLUMNS`` if set, else the terminal's width, else 80."""
    return max(20, shutil.get_terminal_size((80, 24)).columns)


def format_table(table: pa.Table, max_rows: int | None = 100, width: int | None = None) -> str:
    """An aligned text table no wider than ``width`` (default: :func:`terminal_width`).

    Numbers are right-aligned; at most ``max_rows`` rows are shown. Columns that do not fit are
    hidden from the middle (``…`` marks where), the first and last ones kept, and the footer
    says how many were hidden.
    """
    width = terminal_width() if width is None else width
    shown = table if max_rows is None else table.slice(0, max_rows)
    names = table.column_names
    types = [f.type for f in table.schema]
    values = _columns(shown)
    numeric = [
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or bool(_huge(t))
        for t in types
    ]
    limit = max(4, min(MAX_CELL, width - 4))  # one column and the "…" marker always fit
    cols = [  # a number is never cut short: that would show another number
        [_cell(v, t) if num else _cut(_cell(v, t), limit) for v in col]
        for col, t, num in zip(values, types, numeric, strict=True)
    ]
    widths = [
        max([len(_cut(n, limit))] + [len(c) for c in col])
        for n, col in zip(names, cols, strict=True)
    ]
    keep = _fit(widths, width)
    hidden = len(names) - len(keep)

    def line(cells: list[str]) -> str:
        parts, prev = [], None
        for c in keep:
            if prev is not None and c != prev + 1:
                parts.append("…")
            parts.append(cells[c])
            prev = c
        if keep and keep[-1] != len(names) - 1:  # the hidden columns are the last ones
            parts.append("…")
        return _GAP.join(parts).rstrip()

    def just(c: int, text: str) -> str:
        return text.rjust(widths[c]) if numeric[c] else text.ljust(widths[c])

    lines = [
        line([just(c, _cut(n, limit)) for c, n in enumerate(names)]),
        line(["-" * w for w in widths]),
    ]
    for r in range(shown.num_rows):
        lines.append(line([just(c, cols[c][r]) for c in range(len(names))]))
    n = table.num_rows
    rows = f"{n:,} row{'s' if n != 1 else ''}"
    if shown.num_rows < n:
        rows = f"{n:,} rows, first {shown.num_rows} shown"
    if hidden:
        rows += (
            f"; {len(names)} columns, {hidden} hidden to fit {width} characters (select fewer "
            "columns, widen the terminal or set COLUMNS)"
        )
    if shown.num_rows < n or hidden:
        rows += "; use --format csv/json or --out FILE for everything"
    lines += textwrap.wrap(f"({rows})", width=width, break_on_hyphens=False)
    return "\n".join(lines)


def _fit(widths: list[int], width: int) -> list[int]:
    """Indices of the columns shown: all if they fit, else alternately from the left and the
    right end (at least one) until the next would overflow ``width`` with the ``…`` marker."""
    total = sum(widths) + len(_GAP) * (len(widths) - 1)
    if total <= width or len(widths) <= 1:
        return list(range(len(widths)))
    left: list[int] = [0]
    right: list[int] = []
    used = widths[0] + len(_GAP) + 1  # the first column and the "…" column
    lo, hi = 1, len(widths) - 1
    take_right = True
    while lo <= hi:
        c = hi if take_right else lo
        need = widths[c] + len(_GAP)
        if used + need > width:
            break
        used += need
        if take_right:
            right.insert(0, c)
            hi -= 1
        else:
            left.append(c)
            lo += 1
        take_right = not take_right
    return left + right


# --------------------------------------------------------------------------- CSV


def _text_nested(table: pa.Table) -> pa.Table:
    """Columns CSV has no form for, as text: lists, structs and maps as their JSON text, 128-bit
    integers as decimal digits, BLOBs as hex, intervals as ISO 8601 durations."""
    for i, f in enumerate(table.schema):
        t = f.type
        if (
            _is_nested(t)
            or _huge(t)
            or isinstance(t, pa.BaseExtensionType)
            or pa.types.is_interval(t)
            or pa.types.is_duration(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
        ):
            values = _columns(table.select([i]))[0]
            text = [
                None
                if v is None
                else (_plain(v) if not isinstance(v, (dict, list)) else _json_text(v))
                for v in values
            ]
            table = table.set_column(i, pa.field(f.name, pa.string()), pa.array(text, pa.string()))
    return table


def format_csv(table: pa.Table) -> str:
    buf = io.BytesIO()
    _write_csv(table, buf)
    return buf.getvalue().decode("utf-8")


def _write_csv(table: pa.Table, where) -> None:  # type: ignore[no-untyped-def]
    try:
        pcsv.write_csv(
            _text_nested(table), where, write_options=pcsv.WriteOptions(quoting_style="needed")
        )
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:  # pragma: no cover
        raise QueryError(
            f"CSV cannot hold a column of this result ({exc}); cast it in the SQL "
            "(e.g. CAST(x AS VARCHAR)) or use --format json / --out x.parquet."
        ) from None


def render(table: pa.Table, fmt: str, max_rows: int | None = 100) -> str:
    if fmt == "table":
        return format_table(table, max_rows)
    if fmt == "csv":
        return format_csv(table).rstrip("\n")
    if fmt == "json":
        return format_json(table)
    if fmt == "jsonl":
        return format_jsonl(table)
    raise QueryError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- Parquet, files


def column_metadata(wh) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """``{column: {"unit": ..., "description": ...}}`` known for the warehouse's columns.

    From each loaded base table's stored Arrow field metadata (``unit``, ``description``), else,
    for the HSC-SSP tables, the archive schema shipped with the loader. Views keep column names,
    so a query column takes what the base column of the same name says; a name whose tables
    disagree gets nothing. Empty values are left out.
    """
    from warehouse.store.contracts import base_tables

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
    from warehouse.store.hsc_columns import field_metadata, forced_columns, specz_columns

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
    table: pa.Table, path: Path, column_info: Mapping[str, Mapping[str, str]] | None = None
) -> None:
    """Write ``.csv`` or ``.parquet`` atomically (a temporary file, then a rename).

    Parquet carries ``unit``/``description`` field metadata from ``column_info`` (see
    :func:`column_metadata`) and astropy's header; intervals and DuckDB's opaque integers are
    written as text. CSV writes nested cells as JSON text.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise QueryError(f"--out {path}: the file name must end in .csv or .parquet")
    if path.parent and not path.parent.exists():
        raise QueryError(f"--out {path}: folder {path.parent} does not exist; create it first.")
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


__all__ = [
    "FORMATS",
    "column_metadata",
    "format_csv",
    "format_json",
    "format_jsonl",
    "format_table",
    "render",
    "save",
    "terminal_width",
    "with_metadata",
]
