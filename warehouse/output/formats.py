"""Query results as text: aligned tables that fit the terminal, CSV, JSON and JSON Lines
(the promises of each format are in :mod:`warehouse.output`)."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import math
import shutil
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TextIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from warehouse import interrupts
from warehouse.errors import QueryError

FORMATS = ("table", "csv", "json", "jsonl")
MAX_CELL = 40  # characters of one text cell in --format table before it is cut with "…"
_GAP = "  "


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


MORE = "use --format csv/json or --out FILE for everything"
"""What :func:`format_table`'s footer says to see every row and column (``gwh sql``); a command
without those options says what it has instead."""


def format_table(
    table: pa.Table,
    max_rows: int | None = 100,
    width: int | None = None,
    total: int | None = None,
    more: str = MORE,
) -> str:
    """An aligned text table no wider than ``width`` (default: :func:`terminal_width`).

    Numbers are right-aligned; at most ``max_rows`` rows are shown. Columns that do not fit are
    hidden from the middle (``…`` marks where), the first and last ones kept, and the footer
    says how many were hidden. ``total``: the result's row count when ``table`` holds only its
    first rows (:func:`warehouse.api.preview`). ``more``: how to see everything.
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
    n = table.num_rows if total is None else total
    rows = f"{n:,} row{'s' if n != 1 else ''}"
    if shown.num_rows < n:
        rows = f"{n:,} rows, first {shown.num_rows} shown"
    if hidden:
        rows += (
            f"; {len(names)} columns, {hidden} hidden to fit {width} characters (select fewer "
            "columns, widen the terminal or set COLUMNS)"
        )
    if shown.num_rows < n or hidden:
        rows += f"; {more}"
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
    _write_csv_batches(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()), where)


def _write_csv_batches(
    reader: pa.RecordBatchReader,
    where,  # type: ignore[no-untyped-def]
    flush: Callable[[], None] = lambda: None,
) -> int:
    """CSV of every row of ``reader`` into ``where`` (a path or binary file), a batch at a time:
    the bytes :func:`pyarrow.csv.write_csv` gives for the whole table; ``flush`` runs after each
    batch. Returns the row count."""
    rows = 0
    try:
        schema = _text_nested(reader.schema.empty_table()).schema
        options = pcsv.WriteOptions(quoting_style="needed")
        with pcsv.CSVWriter(where, schema, write_options=options) as writer:
            for batch in reader:
                writer.write_table(_text_nested(pa.Table.from_batches([batch])))
                rows += batch.num_rows
                flush()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:  # pragma: no cover
        raise QueryError(
            f"CSV cannot hold a column of this result ({exc}); cast it in the SQL "
            "(e.g. CAST(x AS VARCHAR)) or use --format json / --out x.parquet."
        ) from None
    return rows


def write_stream(reader: pa.RecordBatchReader, fmt: str, write: Callable[[str], object]) -> int:
    """:func:`render` of every row of ``reader`` in ``fmt`` (csv, json or jsonl) followed by a
    newline, handed to ``write`` a batch at a time: the same text, never the whole result.
    Returns the row count."""
    if fmt == "csv":
        buf = io.BytesIO()
        tail = ""  # render strips the text's last newlines (and echo adds one back)

        def flush() -> None:
            nonlocal tail
            text = tail + buf.getvalue().decode("utf-8")
            buf.seek(0)
            buf.truncate()
            kept = text.rstrip("\n")
            tail = text[len(kept) :]
            if kept:
                write(kept)

        count = _write_csv_batches(reader, buf, flush)
        flush()
        write("\n")
        return count
    if fmt not in ("json", "jsonl"):
        raise QueryError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    unique_names(reader.schema.names, f"JSON ({fmt})")
    first, count = True, 0
    for batch in reader:
        rows = list(_rows_json(pa.Table.from_batches([batch])))
        if not rows:
            continue
        lead = ("[\n" if fmt == "json" else "") if first else (",\n" if fmt == "json" else "\n")
        write(lead + (",\n" if fmt == "json" else "\n").join(rows))
        first, count = False, count + len(rows)
    write(("[]" if first else "\n]") + "\n" if fmt == "json" else "\n")
    return count


def unique_names(names: Sequence[str], target: str) -> None:
    """Refuse two columns of one name where ``target`` (a JSON object, a Parquet file, an
    export) cannot hold them: JSON printed {"a": 1, "a": 2}, --out x.parquet failed with a
    traceback."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise QueryError(
                f"the query returns two columns named {name}, which {target} cannot hold: "
                f"name them apart (... AS {name}_2)."
            )
        seen.add(name)


def print_stream(reader: pa.RecordBatchReader, fmt: str, out: TextIO | None = None) -> None:
    """:func:`write_stream` to ``out`` (standard output). A reader of the output that stops
    early (``gwh sql -f csv ... | head``) ends it quietly, exit 0: it has what it asked for."""
    out = sys.stdout if out is None else out
    try:
        write_stream(reader, fmt, out.write)
        out.flush()
    except BrokenPipeError:
        interrupts.reader_gone(out)


def render(table: pa.Table, fmt: str, max_rows: int | None = 100, more: str = MORE) -> str:
    if fmt == "table":
        return format_table(table, max_rows, more=more)
    if fmt == "csv":
        return format_csv(table).rstrip("\n")
    if fmt == "json":
        return format_json(table)
    if fmt == "jsonl":
        return format_jsonl(table)
    raise QueryError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
