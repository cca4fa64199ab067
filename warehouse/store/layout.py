"""How a table's partition files are laid out in Parquet: rows per row group and the compression
codec of each column, declared per table in its contract (:mod:`warehouse.store.contracts`).

Every store writer (a load's partitions, their margin catalog, a materialised mart) writes with
the layout of the table it writes, so a table's files never mix layouts by writer. The layout is
a writing choice only: readers never need it, and files written with another layout (older
versions, hard-linked partitions) read the same.

>>> ParquetLayout().compression_of(pa.schema([("ra", pa.float64())]))
'snappy'
>>> ParquetLayout(column_compression=(("*_image", "none"),)).compression_of(
...     pa.schema([("ra", pa.float64()), ("g_image", pa.binary())]))
{'ra': 'snappy', 'g_image': 'none'}
"""

from __future__ import annotations

import fnmatch
import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["CODECS", "DEFAULT_LAYOUT", "DEFAULT_ROW_GROUP_ROWS", "ParquetLayout"]

DEFAULT_ROW_GROUP_ROWS = 100_000
"""Rows per row group of a table whose contract names no other size."""

CODECS = ("none", "snappy", "zstd", "lz4", "gzip", "brotli")
"""Parquet codecs a layout may name (as pyarrow spells them)."""


@dataclass(frozen=True)
class ParquetLayout:
    """Rows per row group, compression and data pages of a table's partition files.

    ``column_compression``: ``(pattern, codec)`` pairs, the first whose ``fnmatch`` pattern
    matches a column's name choosing its codec (e.g. ``("*_image", "none")`` for pixel blobs
    that do not compress); other columns get ``compression``.

    ``page_bytes`` (None: pyarrow's 1 MiB) bounds a data page and ``page_index`` writes the
    Parquet page index (each page's ``_healpix_29`` range and row offsets). With both, a reader
    that filters on ``_healpix_29`` (DuckDB does) reads and decodes only the pages of every
    column that hold the rows it wants, not the whole row group: a cone search then decodes a
    few pages of each column instead of 100k rows of each.
    """

    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS
    compression: str = "snappy"
    column_compression: tuple[tuple[str, str], ...] = ()
    page_bytes: int | None = None
    page_index: bool = False

    def __post_init__(self) -> None:
        if self.row_group_rows < 1:
            raise ValueError(f"row_group_rows must be positive, got {self.row_group_rows}")
        if self.page_bytes is not None and self.page_bytes < 1:
            raise ValueError(f"page_bytes must be positive, got {self.page_bytes}")
        for codec in (self.compression, *(c for _, c in self.column_compression)):
            if codec not in CODECS:
                raise ValueError(f"compression {codec!r} is not one of {', '.join(CODECS)}")

    def codec_of(self, column: str) -> str:
        """The codec of the top-level column ``column``."""
        for pattern, codec in self.column_compression:
            if fnmatch.fnmatchcase(column, pattern):
                return codec
        return self.compression

    def compression_of(self, schema: pa.Schema) -> str | dict[str, str]:
        """pyarrow's ``compression`` argument for files of ``schema``: one codec, or one per
        Parquet leaf column (a nested column's leaves take the codec of the column)."""
        if not self.column_compression:
            return self.compression
        codecs = {f.name: self.codec_of(f.name) for f in schema}
        if len(set(codecs.values())) == 1:
            return next(iter(codecs.values()))
        out: dict[str, str] = {}
        for f in schema:
            if pa.types.is_nested(f.type):
                for path in _leaf_paths(schema):
                    if path.startswith(f.name + "."):
                        out[path] = codecs[f.name]
            else:
                out[f.name] = codecs[f.name]
        return out


DEFAULT_LAYOUT = ParquetLayout()
"""The layout of a table whose contract names none: 100k-row groups, snappy."""

_LEAVES: dict[bytes, tuple[str, ...]] = {}


def _leaf_paths(schema: pa.Schema) -> tuple[str, ...]:
    """The Parquet leaf column paths of ``schema`` (``name`` for a flat column, e.g.
    ``name.list.element`` for a list), as pyarrow writes them: from an empty file's schema."""
    key = schema.serialize().to_pybytes()
    if key not in _LEAVES:
        buffer = io.BytesIO()
        pq.write_table(schema.empty_table(), buffer)
        parquet_schema = pq.ParquetFile(pa.BufferReader(buffer.getvalue())).schema
        _LEAVES[key] = tuple(parquet_schema.column(i).path for i in range(len(parquet_schema)))
    return _LEAVES[key]
