"""CSV exports (plain or gzip): the header found, the shape checked in one pass, values parsed
with the declared types, a bad value named by its line."""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv

from loaders.readers.common import (
    FALSE_VALUES,
    NULL_VALUES,
    TRUE_VALUES,
    TypeFor,
    check_names,
    normalise_name,
    one_line,
)
from warehouse.errors import LoadError

BLOCK_BYTES = 1 << 24
"""Bytes of CSV text parsed at once (16 MiB): a streamed file's chunks are whole blocks."""


def _csv_header(path: Path) -> tuple[list[str], int]:
    """Column names and the 1-based line number of the header.

    The archive may put comment lines (``# ...``) with the job's metadata above the header, and
    may write the header itself as a comment (``# object_id,ra,...``).
    """
    opener = _gzip_open if path.suffix.lower() == ".gz" else open
    last_comment = None
    # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first column's name
    with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                last_comment = (stripped.lstrip("#").strip(), lineno)
                continue
            if (
                "object_id" in [normalise_name(c) for c in stripped.split(",")]
                or last_comment is None
            ):
                return stripped.split(","), lineno
            return last_comment[0].split(","), last_comment[1]
    raise LoadError(f"{path} is empty: no header and no rows. Re-export the table.")


def _gzip_open(path: Path, mode: str, **kw):  # type: ignore[no-untyped-def]
    return gzip.open(path, mode, **kw)


@dataclass(frozen=True)
class _CsvShape:
    """What one pass over a CSV file's bytes tells before it is parsed."""

    lines: int  # physical lines, the last one counted even without a newline
    ends_with_newline: bool
    last_line: str
    quote_open: bool  # an odd number of '"': the file ends inside a quoted value


def _scan_csv(path: Path) -> _CsvShape:
    """Check that ``path`` is complete UTF-8 text and describe its end.

    Reads the file once (decompressing a ``.gz``), so that a truncated compressed stream, binary
    data or an unterminated quote become one clear :class:`LoadError` instead of whatever the
    parser makes of them.
    """
    is_gz = path.suffix.lower() == ".gz"
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = quotes = 0
    tail = b""
    try:
        with gzip.open(path, "rb") if is_gz else open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    line = newlines + block.count(b"\n", 0, exc.start) + 1
                    raise LoadError(
                        f"{path}, line {line}: not UTF-8 text (byte 0x{block[exc.start]:02x}); "
                        "this is not a CSV export, or it is damaged. Give the archive's CSV file."
                    ) from None
                newlines += block.count(b"\n")
                quotes += block.count(b'"')
                tail = (tail + block)[-(1 << 20) :]
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise LoadError(
            f"{path}: ends in the middle of a UTF-8 character; the file looks truncated. "
            "Download or export it again."
        ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise LoadError(
            f"{path}: the gzip stream is truncated or damaged ({one_line(exc)}). Download it again."
        ) from None
    ends = tail.endswith(b"\n") or not tail
    last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
    return _CsvShape(newlines + (0 if ends else 1), ends, last, quotes % 2 == 1)


def _check_complete(path: Path, shape: _CsvShape, names: list[str], header_line: int) -> None:
    """Refuse a CSV whose last record is provably cut short.

    A file may lack a final newline, so that alone is no error. The last record is refused when
    the file ends inside a quoted value, or when it has no final newline and either has fewer
    fields than the header or ends with an empty field right after a delimiter: the archive
    ends every row with a newline, so an unterminated row ending in ``,`` is a cut, not a NULL.
    A number cut between two digits cannot be told from a shorter number; nothing can catch it.
    """
    if shape.quote_open:
        raise LoadError(
            f"{path}, line {shape.lines}: the file ends inside a quoted value (a '\"' is never "
            "closed); it looks truncated. Download or export it again."
        )
    if shape.ends_with_newline or shape.lines <= header_line:
        return
    fields = next(csv.reader([shape.last_line]), [])
    if len(fields) < len(names) or (len(names) > 1 and fields and fields[-1] == ""):
        raise LoadError(
            f"{path}, line {shape.lines}: the last line ends without a newline after "
            f"{len(fields)} of {len(names)} fields"
            + (" (its last field is empty)" if len(fields) == len(names) else "")
            + "; the file looks truncated. Download or export it again."
        )


def read_csv(path: Path, type_for: TypeFor) -> tuple[pa.Table, int]:
    """The whole file: its table and the line number of its header."""
    parts = list(read_csv_chunks(path, type_for))
    header_line = parts[0][1] - 1
    return pa.concat_tables([t for t, _line in parts]), header_line


def csv_shape(path: Path) -> tuple[int, list[str]]:
    """Rows (at most: lines after the header) and normalised column names of a CSV export,
    checked as :func:`read_csv_chunks` checks it before parsing (one pass over the bytes)."""
    shape, names, header_line = _checked(path)
    return max(shape.lines - header_line, 0), names


def _checked(path: Path) -> tuple[_CsvShape, list[str], int]:
    """The file checked (:func:`_scan_csv`, the header, its end), once per version of it: a
    load asks for its shape, then its key column, then its chunks."""
    stat = Path(path).stat()
    return _checked_once(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _checked_once(name: str, _size: int, _mtime_ns: int) -> tuple[_CsvShape, list[str], int]:
    path = Path(name)
    shape = _scan_csv(path)
    raw_names, header_line = _csv_header(path)
    names = check_names(raw_names, path)
    _check_complete(path, shape, names, header_line)
    return shape, names, header_line


def read_csv_chunks(
    path: Path, type_for: TypeFor, rows: int | None = None, columns: list[str] | None = None
) -> Iterator[tuple[pa.Table, int]]:
    """The file ``rows`` rows at a time (None: whole), parsed as it streams (a load's memory
    holds one chunk, not the file), each with the line number of its first row; only
    ``columns`` (normalised names) if given. A bad value or malformed row is named by its line
    (rows are counted as lines, as the archive writes them)."""
    _shape, names, header_line = _checked(path)
    types = {n: t for n in names if (t := type_for(n)) is not None}
    bad_rows: list = []

    def on_invalid(row):  # type: ignore[no-untyped-def]
        bad_rows.append(row)
        return "skip"

    read = pcsv.ReadOptions(column_names=names, skip_rows=header_line, block_size=BLOCK_BYTES)
    parse = pcsv.ParseOptions(invalid_row_handler=on_invalid)
    convert = pcsv.ConvertOptions(
        column_types=types,
        true_values=TRUE_VALUES,
        false_values=FALSE_VALUES,
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        include_columns=columns or [],
    )
    first = header_line + 1
    pending: list[pa.RecordBatch] = []
    size = 0
    try:
        with pcsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=convert
        ) as reader:
            schema = reader.schema
            for batch in reader:
                if bad_rows:
                    break
                pending.append(batch)
                size += batch.num_rows
                if rows is not None and size >= rows:
                    yield pa.Table.from_batches(pending, schema), first
                    first += size
                    pending, size = [], 0
    except (pa.ArrowInvalid, OSError) as exc:
        msg = str(exc)
        m = re.search(r"CSV column #(\d+): CSV conversion error", msg)
        column = names[int(m.group(1))] if m else None
        if m and columns:
            column = columns[int(m.group(1))] if int(m.group(1)) < len(columns) else None
        if column in types:
            _raise_bad_csv_value(path, column, types[column], names, header_line, read, parse)
        if "CSV parse error" in msg:  # drop the row's text, which may be any bytes
            msg = ":".join(msg.split(":")[:2])
        msg = msg[:200].encode("ascii", "backslashreplace").decode()
        raise LoadError(f"{path} is unreadable or truncated: {msg}. Re-export the file.") from None
    if bad_rows:
        _raise_bad_row(path, bad_rows, names, header_line, parse, convert)
    if pending or first == header_line + 1:
        yield (pa.Table.from_batches(pending, schema) if pending else schema.empty_table()), first


def _raise_bad_row(path, bad_rows, names, header_line, parse, convert):  # type: ignore[no-untyped-def]
    """Name the line of the first malformed row (parsed in parallel, a row has no number:
    the file is parsed again in one thread, up to that row)."""
    row = bad_rows[0]
    if row.number is None:
        bad_rows.clear()
        serial = pcsv.ReadOptions(
            column_names=names, skip_rows=header_line, block_size=BLOCK_BYTES, use_threads=False
        )
        with pcsv.open_csv(
            path, read_options=serial, parse_options=parse, convert_options=convert
        ) as reader:
            for _batch in reader:
                if bad_rows:
                    break
        row = bad_rows[0]
    line = row.number if row.number is not None else "?"  # counts the skipped lines too
    what = (
        "the file looks truncated"
        if row is bad_rows[-1] and row.actual_columns < row.expected_columns
        else "the row is malformed"
    )
    raise LoadError(
        f"{path}, line {line}: expected {row.expected_columns} columns, got "
        f"{row.actual_columns} ({what}; {len(bad_rows)} bad row(s) in all). "
        "Re-export or repair the file."
    )


def _raise_bad_csv_value(path, column, want, names, header_line, read, parse):  # type: ignore[no-untyped-def]
    """Stream one column as text to name the first value that does not convert."""
    options = pcsv.ConvertOptions(
        include_columns=[column],
        column_types={column: pa.string()},
        strings_can_be_null=True,
        null_values=NULL_VALUES,
    )
    i = 0
    with pcsv.open_csv(path, read_options=read, parse_options=parse, convert_options=options) as r:
        for batch in r:
            for value in batch.column(0).to_pylist():
                i += 1
                if value is None or (
                    pa.types.is_boolean(want) and value in TRUE_VALUES + FALSE_VALUES
                ):
                    continue
                try:
                    pa.array([value]).cast(want)
                    continue
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    pass
                hint = ""
                if pa.types.is_integer(want) and re.match(r"^-?\d+(\.\d*)?[eE][+-]?\d+$", value):
                    hint = (
                        " This 64-bit integer was written in floating-point notation, which has "
                        "lost digits; re-export with the column as an integer."
                    )
                raise LoadError(
                    f"{path}, line {header_line + i}, column {column}: {value!r} is not a valid "
                    f"{want}.{hint} Fix the value or re-export the file."
                )
    raise LoadError(f"{path}: column {column} does not convert to {want}. Re-export the file.")
