"""Reading archive exports (FITS, CSV, Parquet) into Arrow tables with the declared column types.

Every failure is a :class:`~warehouse.errors.LoadError` naming the file and, where there is one,
the column and row (CSV rows are counted as lines of the file, FITS and Parquet rows from 1).
64-bit identifiers are parsed as integers straight from the text or the binary column, never
through float64.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from warehouse.errors import LoadError

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


def read_table(path: Path, type_for: TypeFor, required: tuple[str, ...] = ()) -> SourceTable:
    """Read ``path`` by its suffix; ``type_for(column)`` gives the declared type or None.

    ``required`` names the columns the loader needs: in a FITS file with several table HDUs,
    the one table holding all of them is read (see :func:`_read_fits`).
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
        table = _read_fits(path, required)
    elif suffix in (".csv", ".csv.gz", ".txt"):
        table, header_line = _read_csv(path, type_for)
        return SourceTable(path, table, header_line + 1, "line")
    elif suffix in (".parquet", ".pq"):
        table = _read_parquet(path)
    else:
        raise LoadError(
            f"{path}: unknown file type {suffix or '(none)'}; "
            "give a .fits, .csv or .parquet export."
        )
    return SourceTable(
        path, cast_declared(table, type_for, path, row_offset=1, row_word="row"), 1, "row"
    )


def _check_names(names: list[str], path: Path) -> list[str]:
    out = [normalise_name(n) for n in names]
    seen: set[str] = set()
    for n in out:
        if not n:
            raise LoadError(f"{path}: a column has an empty name. Fix the header.")
        if n in seen:
            raise LoadError(f"{path}: column {n} appears twice. Remove one of them.")
        seen.add(n)
    return out


# --------------------------------------------------------------------------- CSV


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


def _read_csv(path: Path, type_for: TypeFor) -> tuple[pa.Table, int]:
    shape = _scan_csv(path)
    raw_names, header_line = _csv_header(path)
    names = _check_names(raw_names, path)
    _check_complete(path, shape, names, header_line)
    types = {n: t for n in names if (t := type_for(n)) is not None}
    bad_rows: list = []

    def on_invalid(row):  # type: ignore[no-untyped-def]
        bad_rows.append(row)
        return "skip"

    read = pcsv.ReadOptions(column_names=names, skip_rows=header_line, block_size=1 << 24)
    parse = pcsv.ParseOptions(invalid_row_handler=on_invalid)
    convert = pcsv.ConvertOptions(
        column_types=types,
        true_values=TRUE_VALUES,
        false_values=FALSE_VALUES,
        null_values=NULL_VALUES,
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        table = pcsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, OSError) as exc:
        msg = str(exc)
        m = re.search(r"CSV column #(\d+): CSV conversion error", msg)
        if m and names[int(m.group(1))] in types:
            column = names[int(m.group(1))]
            _raise_bad_csv_value(path, column, types[column], names, header_line, read, parse)
        if "CSV parse error" in msg:  # drop the row's text, which may be any bytes
            msg = ":".join(msg.split(":")[:2])
        msg = msg[:200].encode("ascii", "backslashreplace").decode()
        raise LoadError(f"{path} is unreadable or truncated: {msg}. Re-export the file.") from None
    if bad_rows:
        row = bad_rows[0]
        if row.number is None:  # parsed in parallel: read again in one thread for the number
            bad_rows.clear()
            serial = pcsv.ReadOptions(
                column_names=names, skip_rows=header_line, block_size=1 << 24, use_threads=False
            )
            pcsv.read_csv(path, read_options=serial, parse_options=parse, convert_options=convert)
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
    return table, header_line


def _raise_bad_csv_value(path, column, want, names, header_line, read, parse):  # type: ignore[no-untyped-def]
    """Re-read one column as text to name the first value that does not convert."""
    text = pcsv.read_csv(
        path,
        read_options=read,
        parse_options=parse,
        convert_options=pcsv.ConvertOptions(
            include_columns=[column],
            column_types={column: pa.string()},
            strings_can_be_null=True,
            null_values=NULL_VALUES,
        ),
    ).column(column)
    for i, value in enumerate(text.to_pylist()):
        if value is None or (pa.types.is_boolean(want) and value in TRUE_VALUES + FALSE_VALUES):
            continue
        try:
            pa.array([value]).cast(want)
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        hint = ""
        if pa.types.is_integer(want) and re.match(r"^-?\d+(\.\d*)?[eE][+-]?\d+$", value):
            hint = (
                " This 64-bit integer was written in floating-point notation, which has lost "
                "digits; re-export with the column as an integer."
            )
        raise LoadError(
            f"{path}, line {header_line + 1 + i}, column {column}: {value!r} is not a valid "
            f"{want}.{hint} Fix the value or re-export the file."
        )
    raise LoadError(f"{path}: column {column} does not convert to {want}. Re-export the file.")


# --------------------------------------------------------------------------- FITS


def _read_fits(path: Path, required: tuple[str, ...] = ()) -> pa.Table:
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            # our own handle: astropy leaves its file open when a damaged header aborts fits.open
            with open(path, "rb") as fh, fits.open(fh, memmap=False) as hdul:
                hdu = _data_table(path, hdul, required)
                data = hdu.data
                columns = hdu.columns
                arrays = {}
                names = _check_names(columns.names, path)
                for raw, name, col in zip(columns.names, names, columns, strict=True):
                    arrays[name] = _fits_column(np.asarray(data[raw]), col)
    except LoadError:
        raise
    except Exception as exc:  # astropy raises many types for damaged files
        raise LoadError(
            f"{path} is unreadable or truncated as FITS ({type(exc).__name__}: {one_line(exc)}). "
            "Download or export it again."
        ) from None
    # <col>_isnull columns mark NULLs in the archive's FITS output: apply them, then drop them.
    nulls = {n[: -len("_isnull")]: a for n, a in arrays.items() if n.endswith("_isnull")}
    out = {}
    for name, arr in arrays.items():
        if name.endswith("_isnull") and name[: -len("_isnull")] in arrays:
            continue
        mask = nulls.get(name)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            out[name] = pa.array(arr, mask=mask if mask.any() else None)
        else:
            out[name] = pa.array(arr)
    return pa.table(out)


def _data_table(path: Path, hdul, required: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """The table HDU to load: the only one, else the only one holding every required column.

    Never the first table by default: a file whose first table is a small metadata table would
    load the wrong rows silently.
    """
    from astropy.io import fits

    tables = [(i, h) for i, h in enumerate(hdul) if isinstance(h, fits.BinTableHDU)]
    if not tables:
        raise LoadError(f"{path} has no binary table HDU. Export the table as FITS again.")
    if len(tables) == 1:
        return tables[0][1]
    wanted = {normalise_name(c) for c in required}
    fits_ok = [(i, h) for i, h in tables if wanted <= {normalise_name(n) for n in h.columns.names}]
    if len(fits_ok) == 1 and wanted:
        return fits_ok[0][1]
    found = "; ".join(
        f"HDU {i} {h.name or '(no name)'}: {h.header.get('NAXIS2', '?')} rows, columns "
        f"{', '.join(h.columns.names[:5])}{', ...' if len(h.columns.names) > 5 else ''}"
        for i, h in tables
    )
    raise LoadError(
        f"{path} has {len(tables)} table HDUs and {len(fits_ok) or 'none'} of them hold all of "
        f"{', '.join(required) or 'the required columns'} ({found}). Write the data table "
        "alone to a file and load that."
    )


def _fits_column(values: np.ndarray, col) -> np.ndarray | list:  # type: ignore[no-untyped-def]
    if values.ndim > 1:
        raise LoadError(
            f"column {col.name} holds arrays (shape {values.shape[1:]}); only scalar columns load."
        )
    if values.dtype.kind == "S":
        return [v.decode("utf-8", "replace").rstrip() for v in values]
    if values.dtype.kind == "U":
        return [v.rstrip() for v in values]
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))
    return values


# --------------------------------------------------------------------------- Parquet


def _read_parquet(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LoadError(
            f"{path} is unreadable or truncated as Parquet ({one_line(exc)}). Write it again."
        ) from None
    names = _check_names(table.column_names, path)
    return table.rename_columns(names)


# --------------------------------------------------------------------------- types


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
        names = _check_names(pf.schema_arrow.names, path)
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


def read_parquet_column(path: Path, name: str, type_for: TypeFor) -> SourceTable:
    """One column of a Parquet file (by its normalised name), with its declared type: e.g. the
    key alone, to check it over the whole file before reading the rest in chunks."""
    path = Path(path)
    try:
        pf = pq.ParquetFile(path)
        names = _check_names(pf.schema_arrow.names, path)
        raw = pf.schema_arrow.names[names.index(name)]
        table = pf.read(columns=[raw]).rename_columns([name])
    except (pa.ArrowInvalid, OSError) as exc:
        raise LoadError(
            f"{path} is unreadable or truncated as Parquet ({one_line(exc)}). Write it again."
        ) from None
    return SourceTable(path, cast_declared(table, type_for, path, 1, "row"), 1, "row")
