"""External morphology tables into ``morphology`` (``gwh load morphology FILE``).

Input: CSV, FITS or Parquet keyed by ``object_id`` (the HSC object), with any of the GalaxiesML
Table 1 columns ``{b}_<field>`` (e.g. ``i_ellipticity``, ``g_central_image_pop_5px_rad``) for
the configured bands, optionally ``{b}_morph_reason``, and optionally ``ra``/``dec`` (degrees).
Without positions, each object takes its ``hsc_forced`` position (an object_id not there is an
error). Any other column is refused: ``ml_objects`` carries every morphology column, so an
unknown name could shadow a catalog column.

Each row replaces the whole morphology row of its object (every band; columns the file lacks are
NULL), with ``morphology_source = 'loaded:<file name>'``. A value that is NaN, infinite or a
catalog sentinel (-99, -999) was not measured: it is stored NULL and ``{b}_morph_reason`` names
the file and the columns, as a measurement says why a value is NULL. ``gwh morphology measure``
leaves a loaded row alone unless told ``--replace-loaded``. A file loads once (by SHA-256),
like every load.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loaders.base import (
    check_positions,
    check_unique,
    require_columns,
    require_rows,
)
from loaders.readers import SourceTable, read_table
from warehouse.errors import LoadError, QueryError
from warehouse.loading import LoadResult, Prepared
from warehouse.morphology.fields import (
    LOADED_PREFIX,
    MORPHOLOGY_FIELDS,
    field_type,
    morphology_schema,
)
from warehouse.store.contracts import MORPHOLOGY

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = ["LOADER_NAME", "MorphologyLoader", "load_morphology", "prepare_morphology"]

LOADER_NAME = "morphology"
_FIELD = re.compile(r"^([a-z][a-z0-9]*)_(" + "|".join(MORPHOLOGY_FIELDS + ("morph_reason",)) + ")$")


def morphology_type(name: str) -> pa.DataType | None:
    """Declared type of an input column (None: not a morphology column)."""
    if name == "object_id":
        return pa.int64()
    if name in ("ra", "dec"):
        return pa.float64()
    m = _FIELD.match(name)
    if m is None:
        return None
    return pa.string() if m.group(2) == "morph_reason" else field_type(m.group(2))


def prepare_morphology(path: Path, bands: Sequence[str]) -> SourceTable:
    """Read and check one file: typed columns, unique non-null object_id, known names only."""
    src = read_table(path, morphology_type, required=("object_id",))
    table = src.table
    require_columns(src, ("object_id",), "morphology")
    require_rows(src, "morphology")
    unknown = [
        c
        for c in table.column_names
        if c not in ("object_id", "ra", "dec") and not (_FIELD.match(c))
    ]
    if unknown:
        raise LoadError(
            f"{src.path}: column(s) {', '.join(unknown[:8])} are not morphology columns. The "
            "table takes object_id, optional ra/dec and per band {b}_<field> for the fields "
            f"{', '.join(MORPHOLOGY_FIELDS)} (and {{b}}_morph_reason); rename or drop them."
        )
    other_bands = sorted(
        {m.group(1) for c in table.column_names if (m := _FIELD.match(c))} - set(bands)
    )
    if other_bands:
        raise LoadError(
            f"{src.path}: band(s) {', '.join(other_bands)} are not configured (bands: "
            f"{''.join(bands)}); drop those columns or add the bands to warehouse.toml."
        )
    if not any(_FIELD.match(c) for c in table.column_names):
        raise LoadError(f"{src.path}: no morphology column (e.g. i_ellipticity); nothing to load.")
    if table.column("object_id").null_count:
        raise LoadError(
            f"{src.path}: object_id is empty in {table.column('object_id').null_count} row(s); "
            "every row needs its HSC object_id."
        )
    has_ra, has_dec = "ra" in table.column_names, "dec" in table.column_names
    if has_ra != has_dec:
        raise LoadError(f"{src.path}: has {'ra' if has_ra else 'dec'} only; give both or neither.")
    if has_ra:
        check_positions(src, "ra", "dec")
    check_unique(src, table, MORPHOLOGY.key)
    return src


def _with_positions(wh, src: SourceTable) -> pa.Table:  # type: ignore[no-untyped-def]
    table = src.table
    if "ra" in table.column_names:
        return table
    ids = table.column("object_id").to_pylist()
    try:
        found = wh.query(
            "SELECT object_id, ra, dec FROM hsc_forced "
            "WHERE object_id IN (SELECT unnest(?::BIGINT[]))",
            [ids],
        ).to_pylist()
    except QueryError as exc:
        raise LoadError(
            f"{src.path}: has no ra/dec, so positions come from hsc_forced, which cannot be read "
            f"({exc}). Add ra and dec columns, or load hsc_forced first."
        ) from None
    where = {r["object_id"]: (r["ra"], r["dec"]) for r in found}
    missing = [i for i in ids if i not in where]
    if missing:
        raise LoadError(
            f"{src.path}: {len(missing)} object_id(s) are not in hsc_forced (e.g. "
            f"{missing[:5]}); add ra and dec columns, or load their hsc_forced rows first."
        )
    ra = pa.array([where[i][0] for i in ids], pa.float64())
    dec = pa.array([where[i][1] for i in ids], pa.float64())
    return table.append_column("ra", ra).append_column("dec", dec)


SENTINELS = (-99.0, -999.0)
"""Values catalogs write for "not measured" (SExtractor, HSC): never a valid morphology value."""


def _not_measured(table: pa.Table, path: Path) -> pa.Table:
    """``table`` with NaN, infinite and sentinel values NULL, each such row's
    ``{b}_morph_reason`` saying so (after the file's own reason). They were stored as measured
    values with a NULL reason, which says every field was measured."""
    by_band: dict[str, list[str]] = {}
    for name in table.column_names:
        m = _FIELD.match(name)
        if m is not None and m.group(2) != "morph_reason":
            by_band.setdefault(m.group(1), []).append(name)
    for band, names in by_band.items():
        flagged: dict[int, list[str]] = {}
        for name in names:
            values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            bad = ~np.isfinite(values) | np.isin(values, SENTINELS)
            bad &= table.column(name).is_valid().to_numpy(zero_copy_only=False)
            if not bad.any():
                continue
            for row in np.flatnonzero(bad).tolist():
                flagged.setdefault(row, []).append(name)
            index = table.column_names.index(name)
            table = table.set_column(
                index, name, pc.if_else(pa.array(bad), None, table.column(name))
            )
        if not flagged:
            continue
        reason = f"{band}_morph_reason"
        given = (
            table.column(reason).to_pylist()
            if reason in table.column_names
            else [None] * len(table)
        )
        for row, columns in flagged.items():
            said = f"not measured in {path.name} (NaN or -99 in {', '.join(columns)})"
            given[row] = f"{given[row]}; {said}" if given[row] else said
        if reason in table.column_names:
            table = table.set_column(
                table.column_names.index(reason), reason, pa.array(given, pa.string())
            )
        else:
            table = table.append_column(reason, pa.array(given, pa.string()))
    return table


def _full_rows(table: pa.Table, bands: Sequence[str], source: str) -> pa.Table:
    """Every column of the table for every configured band: a loaded row replaces it whole."""
    schema = morphology_schema(bands)
    n = table.num_rows
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        elif f.name == "morphology_source":
            columns.append(pa.array([source] * n, pa.string()))
        else:
            columns.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


class MorphologyLoader:
    name = LOADER_NAME
    description = "per-band morphology (GalaxiesML Table 1 columns) for objects by object_id"

    def prepare(self, path: Path, wh: Warehouse | None = None) -> list[Prepared]:
        if wh is None:
            raise LoadError(f"{path}: morphology loads into a warehouse (bands, positions).")
        src = prepare_morphology(path, wh.config.bands)
        table = _not_measured(_with_positions(wh, src), Path(path))
        table = _full_rows(table, wh.config.bands, LOADED_PREFIX + path.name)
        return [Prepared(MORPHOLOGY, table)]

    def describe(self, path: Path, prepared: list[Prepared], result: LoadResult) -> str:
        (loaded,) = prepared
        table = loaded.table
        n, total = result.tables[MORPHOLOGY.name]
        measured = int(
            np.sum(
                [
                    table.column(c).null_count < n
                    for c in table.column_names
                    if _FIELD.match(c) and not c.endswith("_morph_reason")
                ]
            )
        )
        return (
            f"{path}: loaded ({MORPHOLOGY.name}: {n:,} rows, {measured} morphology column(s) "
            f"with values → {total:,} rows)"
        )


def load_morphology(
    wh: Warehouse,
    files: Sequence[str | Path],
    *,
    echo: Callable[[str], None] = lambda _m: None,
) -> list[LoadResult]:
    """Load morphology files into ``morphology``; each file once (by SHA-256), each on its own
    commit, so a rerun after a failure resumes with the files not yet loaded. Returns the results
    of the files loaded now."""
    return [r for r in wh.load(MorphologyLoader(), files, echo=echo) if not r.skipped]
