"""Which ``hsc_forced`` object a cutout is: the one within :data:`MATCH_RADIUS_ARCSEC` of its WCS
centre, searched in the HEALPix cells around it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from warehouse.cutouts.inputs import CutoutInput
from warehouse.errors import CutoutError, QueryError
from warehouse.healpix import angular_separation_deg, shift, spatial_index

if TYPE_CHECKING:
    from warehouse.core import Warehouse

MATCH_RADIUS_ARCSEC = 0.5
"""A cutout belongs to the hsc_forced object within this distance of its WCS centre."""

MATCH_ORDER = 14
"""HEALPix order of the cells searched around a cutout centre (~13 arcsec, far above 0.5")."""


def _candidates(wh: Warehouse, ra: np.ndarray, dec: np.ndarray) -> pa.Table:
    """hsc_forced rows in the HEALPix cells around the given centres (and their neighbours)."""
    import healpy as hp

    cells = spatial_index(ra, dec) >> shift(MATCH_ORDER)
    neighbours = hp.get_all_neighbours(2**MATCH_ORDER, cells, nest=True)
    wanted = np.unique(np.concatenate([cells, np.asarray(neighbours).ravel()]))
    wanted = wanted[wanted >= 0]
    try:
        return wh.query(
            "SELECT object_id, ra, dec, _healpix_29 >> ? AS cell FROM hsc_forced "
            "WHERE (_healpix_29 >> ?) IN (SELECT unnest(?::BIGINT[])) ORDER BY object_id",
            [shift(MATCH_ORDER), shift(MATCH_ORDER), wanted.tolist()],
        )
    except QueryError as exc:
        raise CutoutError(
            f"cutouts are matched to hsc_forced objects by position, and hsc_forced cannot be "
            f"read: {exc}"
        ) from None


def match_inputs(
    wh: Warehouse, inputs: list[CutoutInput], problems: list[str]
) -> list[CutoutInput]:
    """Give each input its hsc_forced object (unique within 0.5"), or report it."""
    if not inputs:
        return []
    ra = np.array([i.cut.center_ra for i in inputs])  # type: ignore[union-attr]
    dec = np.array([i.cut.center_dec for i in inputs])  # type: ignore[union-attr]
    cand = _candidates(wh, ra, dec)
    c_id = cand.column("object_id").to_numpy()
    c_ra = cand.column("ra").to_numpy(zero_copy_only=False)
    c_dec = cand.column("dec").to_numpy(zero_copy_only=False)
    c_cell = cand.column("cell").to_numpy()
    order = np.argsort(c_cell, kind="stable")
    c_cell_sorted = c_cell[order]
    cells = spatial_index(ra, dec) >> shift(MATCH_ORDER)
    import healpy as hp

    neighbours = np.asarray(hp.get_all_neighbours(2**MATCH_ORDER, cells, nest=True))
    matched = []
    for k, inp in enumerate(inputs):
        near_cells = np.unique(np.append(neighbours[:, k], cells[k]))
        idx = np.concatenate(
            [
                order[
                    np.searchsorted(c_cell_sorted, c, "left") : np.searchsorted(
                        c_cell_sorted, c, "right"
                    )
                ]
                for c in near_cells
                if c >= 0
            ]
        )
        dist = angular_separation_deg(c_ra[idx], c_dec[idx], ra[k], dec[k]) * 3600.0
        inside = np.flatnonzero(dist <= MATCH_RADIUS_ARCSEC)
        inside = inside[np.lexsort((c_id[idx][inside], dist[inside]))]
        where = f"cutout centre ({ra[k]:.6f}, {dec[k]:.6f})"
        if inside.size == 0:
            problems.append(
                f"{inp.name}: no hsc_forced object within {MATCH_RADIUS_ARCSEC} arcsec of the "
                f"{where}; load the catalog rows of this object first. Not ingested."
            )
            continue
        ids = [int(c_id[idx][j]) for j in inside]
        pick = inside[0]
        if len(ids) > 1:
            if inp.expected_id is not None and inp.expected_id in ids:
                pick = inside[ids.index(inp.expected_id)]  # the list that asked for it decides
            else:
                listed = ", ".join(
                    f"{i} at {dist[j]:.3f} arcsec" for i, j in zip(ids, inside, strict=True)
                )
                problems.append(
                    f"{inp.name}: ambiguous: {len(ids)} hsc_forced objects within "
                    f"{MATCH_RADIUS_ARCSEC} arcsec of the {where} ({listed}). Not ingested."
                )
                continue
        oid = int(c_id[idx][pick])
        if inp.expected_id is not None and oid != inp.expected_id:
            problems.append(
                f"{inp.name}: its list row asked for object_id {inp.expected_id}, but the "
                f"{where} matches object_id {oid}; wrong list mapping? Not ingested."
            )
            continue
        if inp.expected_band is not None and inp.cut.band != inp.expected_band:  # type: ignore[union-attr]
            problems.append(
                f"{inp.name}: its list asked for band {inp.expected_band}, but the file's "
                f"FILTER is {inp.cut.filter_name}. Not ingested."  # type: ignore[union-attr]
            )
            continue
        inp.object_id = oid
        inp.ra = float(c_ra[idx][pick])
        inp.dec = float(c_dec[idx][pick])
        inp.offset_arcsec = float(dist[pick])
        matched.append(inp)
    return matched
