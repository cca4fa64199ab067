"""Where each stored plane's bytes lie in a partition file of an image table.

Image tables keep their float planes uncompressed and PLAIN-encoded (``IMAGE_LAYOUT`` in
:mod:`warehouse.store.contracts`): in a Parquet data page such a column holds, after the page
header and the definition levels, each row's value as a 4-byte little-endian length and the
plane's bytes. When every row of a column chunk holds a plane of the same ``nbytes``, the
plane of row k of a page starts ``4 + k * (4 + nbytes)`` bytes after the page's values begin,
so the bytes can be copied from the (memory-mapped) file to the export as they are: no decode.

:func:`plane_offsets` finds those offsets by reading the page headers (Thrift compact protocol:
only the few fields needed are kept, the rest skipped) and checks that each page's values add
up to ``nbytes`` each; anything else (compression, a dictionary, NULLs, other sizes, an unknown
page) gives None, and the export reads the column through pyarrow instead. The length stored
before every value is checked by :func:`lengths_match` where the bytes are copied.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from warehouse.export.thrift import decode, fields

_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
_PLAIN, _RLE = 0, 3
_HEADERS: dict = {5: {}, 8: {}}  # of a PageHeader, decoded: the data page headers (v1, v2)


class _Unsupported(Exception):
    """A page this reader does not place (the caller falls back to pyarrow)."""


def _chunk_values(buf, start: int, end: int, nbytes: int, levels: bool) -> list[np.ndarray]:
    """The offsets of the values (plane bytes, past their length) of each data page of the
    column chunk ``buf[start:end]``, in row order."""
    out = []
    pos = start
    while pos < end:
        struct, body = decode(buf, pos, _HEADERS)
        header = fields(struct)
        size = header.get(3)
        if not isinstance(size, int) or size < 0:
            raise _Unsupported("page without a size")
        kind = header.get(1)
        if kind == _DATA_PAGE:
            page = header.get(5)
            page = fields(page) if isinstance(page, list) else None
            if page is None or page.get(2) != _PLAIN:
                raise _Unsupported("not a PLAIN data page")
            if levels and page.get(3) != _RLE:
                raise _Unsupported("definition levels not RLE")
            n = page.get(1)
            values = body
            if levels:  # definition levels (RLE), after their 4-byte length
                values += 4 + int.from_bytes(buf[body : body + 4], "little")
        elif kind == _DATA_PAGE_V2:
            page = header.get(8)
            page = fields(page) if isinstance(page, list) else None
            if page is None or page.get(4) != _PLAIN or page.get(2) != 0:
                raise _Unsupported("not a PLAIN data page without NULLs")
            n = page.get(1)
            values = body + int(page.get(5, 0)) + int(page.get(6, 0))  # type: ignore[call-overload]
        else:  # a dictionary or index page: not plain planes
            raise _Unsupported(f"page type {kind}")
        if not isinstance(n, int) or body + size - values != n * (4 + nbytes):
            raise _Unsupported("values of other sizes or NULLs")
        out.append(values + 4 + np.arange(n, dtype=np.int64) * (4 + nbytes))
        pos = body + size
    return out


def lengths_match(buf, offsets: np.ndarray, nbytes: int) -> bool:
    """Whether the length stored before each value at ``offsets`` is ``nbytes`` (a page of
    values of other sizes can add up to the same total). It touches a page of ``buf`` per
    value: done where the values are about to be copied anyway."""
    if not len(offsets):
        return True
    data = np.frombuffer(buf, np.uint8)
    prefixes = data[(offsets - 4)[:, None] + np.arange(4)].view("<u4").ravel()
    return bool((prefixes == nbytes).all())


def plane_offsets(
    pf: pq.ParquetFile, buf, columns: list[str], nbytes: int
) -> dict[str, np.ndarray] | None:
    """For each column of ``columns``, the offset in ``buf`` (the file's bytes, e.g. its memory
    map) of every row's ``nbytes`` value; None unless every row group of each column is
    uncompressed PLAIN pages of as many non-NULL values as ``nbytes`` each make (check each
    value's length with :func:`lengths_match` before using it)."""
    md = pf.metadata
    index = {md.schema.column(i).path: i for i in range(md.num_columns)}
    out = {}
    for name in columns:
        c = index.get(name)
        if c is None:
            return None
        column = md.schema.column(c)
        if column.max_repetition_level != 0 or column.physical_type != "BYTE_ARRAY":
            return None
        parts = []
        for g in range(md.num_row_groups):
            chunk = md.row_group(g).column(c)
            if chunk.compression != "UNCOMPRESSED" or chunk.has_dictionary_page:
                return None
            start = chunk.data_page_offset
            end = start + chunk.total_compressed_size
            try:
                found = _chunk_values(buf, start, end, nbytes, column.max_definition_level > 0)
            except (_Unsupported, IndexError, ValueError, TypeError):
                return None
            rows = sum(len(a) for a in found)
            if rows != md.row_group(g).num_rows:
                return None
            parts += found
        out[name] = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return out
