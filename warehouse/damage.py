"""Damaged files of the warehouse, named from the errors DuckDB gives reading them.

DuckDB names a Parquet file it cannot open, but not always one whose pages fail to decode, nor
one rewritten outside gwh with other column types (it binds each view's types from its first
file and casts the others to them, or fails naming no file and suggesting options the read
paths refuse). :func:`explain_damage` names such a file, with what to do; each reader passes the
files its views read. Loads read stored partitions through :func:`read_stored`, and a
``warehouse.duckdb`` DuckDB cannot open is explained by :func:`unopened_database`.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.errors import DamagedFileError, first_line

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "damaged_among",
    "damaged_file",
    "damaged_parquet",
    "explain_damage",
    "read_order",
    "read_stored",
    "retyped_among",
    "undecodable",
    "unopened_database",
]


def explain_damage(exc: BaseException, files: Iterable[Sequence[str]]) -> str | None:
    """What to say of DuckDB's error ``exc`` when a file of the warehouse caused it (None: no
    damaged file). ``files``: the Parquet files the reader's views read, one sequence per view
    in the order DuckDB reads them; iterated only when the error names no file."""
    named = damaged_parquet(exc)
    if named is not None:
        return named
    first = first_line(exc)
    if undecodable(exc):
        return damaged_among(f for group in files for f in group)
    if first.startswith("Conversion Error"):  # a file's values cast to the first file's types
        said = re.search(r'reading file "([^"]+\.parquet)"', first)
        return retyped_among([said.group(1)] if said else (f for g in files for f in g))
    if first.startswith("Binder Error"):  # a view's types are bound from its first file
        return retyped_among(group[0] for group in files if group)
    return None


def read_stored(path: str | Path, **options) -> pa.Table:  # type: ignore[no-untyped-def]
    """``pyarrow.parquet.read_table`` of a file of the warehouse (a stored partition a load
    merges into or rewrites): one it cannot read is named as damaged, one gone as missing,
    never pyarrow's traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, **options)
    except FileNotFoundError:
        raise DamagedFileError(damaged_file(path, "it is missing")) from None
    except (OSError, pa.ArrowException) as exc:
        raise DamagedFileError(damaged_file(path, first_line(exc))) from None


def read_order(files: str | Sequence[str] | None) -> list[str]:
    """The files a view's ``read_parquet`` of ``files`` (a list, or a glob) reads, in order."""
    if isinstance(files, str):
        return sorted(glob.glob(files)) if "*" in files else [files]
    return list(files or ())


def damaged_parquet(exc: BaseException) -> str | None:
    """What to say of a DuckDB error that names a Parquet file it could not read (None: the
    error names no such file)."""
    first = first_line(exc)
    m = re.match(r"^(?:Invalid Input|IO) Error: (.*?)[ :]*'([^']+\.parquet)'", first)
    short = re.match(r"^Prefetch registered for bytes outside file: (.+?\.parquet),", first)
    if short is not None:  # cut in its middle, footer kept
        return damaged_file(short.group(1), _PAST_END)
    return None if m is None else damaged_file(m.group(2), m.group(1))


_PAST_END = "its footer names bytes past its end"


def damaged_file(path: str | Path, why: str) -> str:
    """What to say of a file of the warehouse found damaged (``why``: how)."""
    return (
        f"{path} is damaged ({why}): a file of the warehouse was truncated or "
        "changed outside gwh. Restore the warehouse folder from a backup, or load its source "
        "files again into a new warehouse."
    )


_UNNAMED_DECODE = (
    "TProtocolException",
    "bytes outside file",  # "Prefetch registered requested for bytes outside file", no file
    "Corrupt",
    "decompress",
    "Snappy",
    "ZSTD",
)
"""Words of DuckDB errors that come from a Parquet file's bytes but may not name the file."""


def undecodable(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB failing to decode a Parquet file it does not name."""
    first = first_line(exc)
    return any(w.lower() in first.lower() for w in _UNNAMED_DECODE)


def damaged_among(paths: Iterable[str]) -> str | None:
    """What to say of the first of ``paths`` (Parquet files) that is damaged: its footer
    unreadable, or naming column chunks past the bytes before it (cut in its middle, footer
    kept). None: all look whole. For errors that name no file (:func:`undecodable`)."""
    import pyarrow.parquet as pq

    for path in paths:
        try:
            md = pq.read_metadata(path)
            data_end = os.path.getsize(path) - 8 - md.serialized_size
            ends = [
                (c.dictionary_page_offset or c.data_page_offset) + c.total_compressed_size
                for g in range(md.num_row_groups)
                for c in (md.row_group(g).column(i) for i in range(md.num_columns))
            ]
        except FileNotFoundError:
            continue  # not this reader's to judge: a glob's file removed meanwhile
        except (OSError, ValueError) as exc:
            return damaged_file(path, (str(exc).strip().splitlines() or [type(exc).__name__])[0])
        if ends and max(ends) > data_end:
            return damaged_file(path, _PAST_END)
    return None


def retyped_among(paths: Iterable[str]) -> str | None:
    """What to say of the first of ``paths`` (partition files of HATS tables) whose columns,
    names or types, differ from its table's (the ``_common_metadata`` of its ``dataset``
    folder, which every partition file gwh writes agrees with). None: all agree."""
    import pyarrow.parquet as pq

    tables: dict[Path, list[tuple[str, object]]] = {}
    for path in paths:
        dataset = next((p for p in Path(path).parents if p.name == "dataset"), None)
        if dataset is None or not (dataset / "_common_metadata").is_file():
            continue  # not a HATS table's partition file: nothing to compare with
        try:
            if dataset not in tables:
                tables[dataset] = _columns(pq.read_schema(dataset / "_common_metadata"))
            found = _columns(pq.read_schema(path))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            return damaged_file(path, first_line(exc))
        if found != tables[dataset]:
            return damaged_file(path, _column_change(found, tables[dataset]))
    return None


def _columns(schema) -> list[tuple[str, object]]:
    return [(f.name, f.type) for f in schema]


def _column_change(found: list[tuple[str, object]], table: list[tuple[str, object]]) -> str:
    """How a file's columns ``found`` differ from its table's, for :func:`damaged_file`."""
    kept = dict(table)
    for name, kind in found:
        if name not in kept:
            return f"it has a column {name} its table does not"
        if kind != kept[name]:
            return f"its column {name} is {kind} where its table's is {kept[name]}"
    gone = [name for name, _ in table if name not in dict(found)]
    if gone:
        return f"it lacks the column {gone[0]} of its table"
    return "its columns are in another order than its table's"


def unopened_database(path: Path, exc: BaseException) -> str:
    """Why ``warehouse.duckdb`` could not be opened: held for writing by a client, or damaged."""
    first = first_line(exc)
    if "not a valid DuckDB database" in first or "Could not read enough bytes" in first:
        return (
            f"{path} is damaged ({first.removeprefix('IO Error: ')}): it was truncated or "
            "overwritten outside gwh. Restore it from a backup (it holds which table versions "
            "are committed and which files were loaded); the tables under catalogs/ are intact."
        )
    return (
        f"cannot open {path}: {first}. If a DuckDB client holds it open for writing, "
        "reopen it read-only (duckdb.connect(..., read_only=True) or `duckdb -readonly`)."
    )
