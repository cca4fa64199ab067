"""HSC-SSP catalog exports: ``pdr2_wide.forced`` (+ ``forced2``) and ``pdr2_wide.specz``.

Files come from the archive's SQL service (FITS with ``<col>_isnull`` columns, or CSV) or any
Parquet with the archive's column names. A forced file may hold forced columns, forced2 columns
or both; the paper's joined query (forced JOIN specz) is split into both tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from loaders.base import (
    KeysOfChunks,
    check_not_null,
    check_positions,
    check_unique,
    require_columns,
    require_rows,
)
from loaders.readers import (
    SourceTable,
    read_table,
    read_table_chunks,
    table_shape,
)
from warehouse.errors import LoadError
from warehouse.loading import Prepared
from warehouse.store.contracts import HSC_FORCED, HSC_SPECZ
from warehouse.store.hsc_columns import (
    declared_type,
    specz_columns,
    with_archive_metadata,
)

if TYPE_CHECKING:
    from warehouse.core import Warehouse

REQUIRED_SPECZ = (
    "object_id",
    "specz_name",
    "specz_ra",
    "specz_dec",
    "specz_redshift",
    "specz_redshift_err",
    "specz_flag_homogeneous",
)
"""The columns a specz export must have (the archive's pdr2_wide.specz names)."""

CHUNK_ROWS = 250_000
"""Rows of a large Parquet or FITS export read at once (``prepare_chunks`` of both loaders): a
load's memory holds one chunk, not the file, and one chunk is sorted while the next is read."""


def _specz_names() -> set[str]:
    return set(specz_columns()) - {"object_id"}


class HscForcedLoader:
    name = "hsc-forced"
    description = "an export of pdr2_wide.forced, forced2, or the paper's forced JOIN specz query"

    def prepare(self, path: Path, wh: Warehouse | None = None) -> list[Prepared]:
        src = read_table(path, declared_type, required=HSC_FORCED.key)
        require_columns(src, ("object_id",), "hsc_forced")
        require_rows(src, "hsc_forced")
        check_not_null(src, src.table, HSC_FORCED.key)
        names = src.table.column_names
        has_ra, has_dec = "ra" in names, "dec" in names
        if has_ra != has_dec:
            raise LoadError(
                f"{src.path}: has {'ra' if has_ra else 'dec'} but not "
                f"{'dec' if has_ra else 'ra'}. Export both or neither."
            )
        if has_ra:
            check_positions(src, "ra", "dec")
        specz_here = [c for c in names if c in _specz_names()]
        forced_names = [c for c in names if c not in specz_here]
        if len(forced_names) == 1:
            raise LoadError(
                f"{src.path}: has object_id but no forced-photometry columns. "
                "Use `gwh load hsc-specz` for a spec-z table."
            )
        out: list[Prepared] = []
        if specz_here and all(c in names for c in REQUIRED_SPECZ):
            forced = _collapse_join_duplicates(src, forced_names)
            specz = src.table.select(["object_id"] + specz_here)
            specz_src = SourceTable(src.path, specz, src.first_row, src.row_word)
            check_positions(specz_src, "specz_ra", "specz_dec")
            check_unique(specz_src, specz, HSC_SPECZ.key)
            out.append(Prepared(HSC_FORCED, with_archive_metadata(forced)))
            out.append(Prepared(HSC_SPECZ, with_archive_metadata(specz)))
        elif specz_here:
            missing = [c for c in REQUIRED_SPECZ if c not in names]
            raise LoadError(
                f"{src.path}: has spec-z columns ({', '.join(specz_here[:4])}) but not "
                f"{', '.join(missing)}, so they cannot form hsc_specz. Export all of "
                f"{', '.join(REQUIRED_SPECZ)} or none of the specz_* columns."
            )
        else:
            check_unique(src, src.table, HSC_FORCED.key)
            out.append(Prepared(HSC_FORCED, with_archive_metadata(src.table)))
        return out

    def prepare_chunks(self, path: Path, wh: Warehouse | None = None) -> Iterator[list[Prepared]]:
        """:meth:`prepare` a part at a time: a Parquet or FITS export of forced columns only,
        with more than :data:`CHUNK_ROWS` rows, is read that many rows at a time with the same
        checks (rows numbered in the file; ``object_id`` unique over the whole file, checked
        from the chunks' keys after the last one). Anything else is prepared whole."""
        path = Path(path)
        shape = table_shape(path, HSC_FORCED.key)
        if (
            shape is None
            or shape[0] <= CHUNK_ROWS
            or "object_id" not in shape[1]
            or shape[1] & _specz_names()
        ):
            yield self.prepare(path, wh)
            return
        keys = KeysOfChunks(HSC_FORCED.key)
        for src in read_table_chunks(path, declared_type, CHUNK_ROWS, HSC_FORCED.key):
            table = _checked_forced(src)
            keys.add(src)
            yield [Prepared(HSC_FORCED, with_archive_metadata(table), part=True)]
        keys.check()


def _checked_forced(src: SourceTable) -> pa.Table:
    """The checks :meth:`HscForcedLoader.prepare` makes of a forced-only export."""
    require_columns(src, ("object_id",), "hsc_forced")
    check_not_null(src, src.table, HSC_FORCED.key)
    names = src.table.column_names
    if ("ra" in names) != ("dec" in names):
        raise LoadError(f"{src.path}: has one of ra and dec. Export both or neither.")
    if "ra" in names:
        check_positions(src, "ra", "dec")
    if len(names) == 1:
        raise LoadError(
            f"{src.path}: has object_id but no forced-photometry columns. "
            "Use `gwh load hsc-specz` for a spec-z table."
        )
    return src.table


def _collapse_join_duplicates(src: SourceTable, forced_names: list[str]) -> pa.Table:
    """In a forced JOIN specz file an object matched to two spectra appears twice with the same
    photometry: keep one copy. Differing photometry for one object_id is an error."""
    table = src.table.select(forced_names)
    counts = table.group_by(["object_id"]).aggregate([([], "count_all")])
    dup_ids = counts.filter(pc.greater(counts.column("count_all"), 1)).column("object_id")
    if len(dup_ids) == 0:
        return table
    is_dup = pc.is_in(table.column("object_id"), value_set=dup_ids)
    dups = table.filter(is_dup).to_pylist()
    first: dict[int, dict] = {}
    for row in dups:
        seen = first.setdefault(row["object_id"], row)
        if repr(seen) != repr(row):
            diff = [k for k in row if repr(row[k]) != repr(seen[k])]
            raise LoadError(
                f"{src.path}: object_id {row['object_id']} appears more than once with different "
                f"values in {', '.join(diff[:5])}. Each object may appear once (or repeat "
                "identically, as a join with several spectra does); fix the export."
            )
    keep = pc.invert(is_dup)
    unique_dups = pa.Table.from_pylist(list(first.values()), schema=table.schema)
    return pa.concat_tables([table.filter(keep), unique_dups])


class HscSpeczLoader:
    name = "hsc-specz"
    description = "an export of pdr2_wide.specz"

    def prepare(self, path: Path, wh: Warehouse | None = None) -> list[Prepared]:
        src = read_table(path, declared_type, required=REQUIRED_SPECZ)
        require_columns(src, REQUIRED_SPECZ, "hsc_specz")
        require_rows(src, "hsc_specz")
        check_positions(src, "specz_ra", "specz_dec")
        check_unique(src, src.table, HSC_SPECZ.key)
        return [Prepared(HSC_SPECZ, with_archive_metadata(src.table))]

    def prepare_chunks(self, path: Path, wh: Warehouse | None = None) -> Iterator[list[Prepared]]:
        """:meth:`prepare` a part at a time for a Parquet or FITS export of more than
        :data:`CHUNK_ROWS` rows with every required column: each chunk checked as
        :meth:`prepare` checks the file (rows numbered in the file), and the key unique over the
        whole file, from the chunks' keys after the last one."""
        path = Path(path)
        shape = table_shape(path, REQUIRED_SPECZ)
        if shape is None or shape[0] <= CHUNK_ROWS or not set(REQUIRED_SPECZ) <= shape[1]:
            yield self.prepare(path, wh)
            return
        keys = KeysOfChunks(HSC_SPECZ.key)
        for src in read_table_chunks(path, declared_type, CHUNK_ROWS, REQUIRED_SPECZ):
            require_columns(src, REQUIRED_SPECZ, "hsc_specz")
            check_positions(src, "specz_ra", "specz_dec")
            keys.add(src)
            yield [Prepared(HSC_SPECZ, with_archive_metadata(src.table), part=True)]
        keys.check()
