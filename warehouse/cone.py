"""Cone search over a table's current HATS version, exact at partition borders.

The HEALPix pixels touching the cone are chosen on the whole sky, whatever partition holds them;
only the partitions holding those pixels are read (as hats/lsdb prune), and every candidate is
tested on the sphere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from warehouse import db
from warehouse.errors import QueryError
from warehouse.healpix import SPATIAL_INDEX_COLUMN, cone_pixel_ranges
from warehouse.store.contracts import base_tables

if TYPE_CHECKING:
    from warehouse.core import Snapshot, Warehouse

__all__ = ["cone"]


def cone(
    wh: Warehouse, ra: float, dec: float, radius_arcsec: float, table: str = "hsc_forced"
) -> pa.Table:
    """Rows of ``table`` within ``radius_arcsec`` of (ra, dec), nearest first.

    Exact at partition borders: the HEALPix pixels touching the cone are chosen on the whole
    sky, whatever partition holds them, and every candidate is tested on the sphere.
    """
    if not (0.0 <= ra <= 360.0):
        raise QueryError(f"RA {ra} is outside [0, 360] degrees.")
    if not (-90.0 <= dec <= 90.0):
        raise QueryError(f"Dec {dec} is outside [-90, 90] degrees.")
    if not (0.0 < radius_arcsec <= 180 * 3600):
        raise QueryError(f"radius {radius_arcsec} arcsec must be positive and at most 180 degrees.")
    defs = base_tables()
    if table in defs:
        ra_col, dec_col = defs[table].spec.ra, defs[table].spec.dec
    elif table == "ml_objects":
        ra_col, dec_col = "ra", "dec"
    else:
        raise QueryError(
            f"cone searches run on {', '.join(list(defs) + ['ml_objects'])}; got {table!r}."
        )
    ranges = cone_pixel_ranges(ra, dec, radius_arcsec)
    where = " OR ".join(
        f"({SPATIAL_INDEX_COLUMN} >= ? AND {SPATIAL_INDEX_COLUMN} < ?)" for _ in ranges
    )
    params: list = [v for r in ranges for v in r]
    with wh.reading() as snapshot:  # the files listed stay the ones the view reads, and on disk
        source = _cone_source(wh, table, ranges, snapshot)
        q = (
            "SELECT *, angular_distance_arcsec("
            f"{db.quote_ident(ra_col)}, {db.quote_ident(dec_col)}, "
            f"?, ?) AS distance_arcsec FROM {source} WHERE ({where}) "
            f"AND cone_search({db.quote_ident(ra_col)}, {db.quote_ident(dec_col)}, ?, ?, ?) "
            "ORDER BY distance_arcsec, 1"
        )
        # SQL built here, not a user's: no read-only parse
        return wh.run_select(q, [ra, dec] + params + [ra, dec, radius_arcsec])


def _cone_source(
    wh: Warehouse, table: str, ranges: list[tuple[int, int]], snapshot: Snapshot
) -> str:
    """The table, or only the partitions of its current version the cone touches."""
    defs = base_tables()
    source = db.quote_ident(table)
    cv = None
    if table in defs and snapshot.held is not None:  # a version never changes: read it once
        cv = snapshot.held.memo(("version", table), lambda: wh.current_version(table))
    elif table in defs:
        cv = wh.current_version(table)
    if cv is not None:
        # Read only the partitions the cone touches, as hats/lsdb prune: the view's glob would
        # open every partition's footer on each search.
        files = [
            str(cv.path / p.relpath)
            for p in cv.partitions
            if any(lo < p.h29_range()[1] and p.h29_range()[0] < hi for lo, hi in ranges)
        ]
        hidden = [
            c
            for c in cv.schema.names
            if defs[table].hidden_suffixes and c.endswith(defs[table].hidden_suffixes)
        ]
        exclude = f" EXCLUDE ({', '.join(db.quote_ident(c) for c in hidden)})" if hidden else ""
        if files:
            source = f"(SELECT *{exclude} FROM {db.parquet_source(files)})"
        else:
            source = f"(SELECT * FROM {db.quote_ident(table)} LIMIT 0)"
    return source
