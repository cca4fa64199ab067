"""A SIMULATED field with one planted spec-z group straddling a partition border, loaded once."""

from __future__ import annotations

from pathlib import Path

import healpy as hp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.simulated.catalog import simulate_field
from warehouse.config import Config
from warehouse.core import Warehouse

STRADDLE = "STRADDLE_0000001"  # the planted spec-z source
BORDER_ORDER = 6  # the planted pair straddles an edge of a pixel at this order


def _offset(lon: float, lat: float, toward: tuple[float, float], arcsec: float):
    """The point ``arcsec`` from (lon, lat) in the direction of ``toward`` (flat-sky; tiny)."""
    dx = (toward[0] - lon) * np.cos(np.radians(lat))
    dy = toward[1] - lat
    norm = np.hypot(dx, dy)
    step = arcsec / 3600.0
    return (
        lon + step * dx / norm / np.cos(np.radians(lat)),
        lat + step * dy / norm,
    )


def border_point(center: tuple[float, float]) -> tuple[tuple[float, float], int]:
    """A point on an edge of the order-BORDER_ORDER pixel holding ``center``, and that pixel."""
    nside = 2**BORDER_ORDER
    pix = int(hp.ang2pix(nside, *center, nest=True, lonlat=True))
    vec = hp.boundaries(nside, pix, step=64, nest=True)  # (3, 4*64) points on the edges
    lon, lat = hp.vec2ang(vec.T, lonlat=True)
    i = 32  # midway along the first edge
    return (float(lon[i]), float(lat[i])), pix


def _clean(row: dict) -> bool:
    """No flag set and finite magnitudes in (0, 50) in every band (the GalaxiesML rules)."""
    flags = [v for k, v in row.items() if k.endswith("_flag") or "_pixelflags_" in k]
    mags = [v for k, v in row.items() if k.endswith("_cmodel_mag") or k.endswith("_magsigma")]
    return not any(flags) and all(v is not None and 0 < v < 50 for v in mags)


def _with_rows(table: pa.Table, rows: list[dict]) -> pa.Table:
    return pa.concat_tables([table, pa.Table.from_pylist(rows, schema=table.schema)])


def straddling_field(folder: Path) -> dict[str, object]:
    """The SIMULATED field plus objects A (0.25" inside an order-6 pixel) and B (0.4" outside),
    both matched to one spec-z source on the border: A is the closer match and is kept."""
    field = simulate_field(1200, seed=7)
    center = (150.1, 2.2)
    (blon, blat), pix = border_point(center)
    inner = hp.pix2ang(2**BORDER_ORDER, pix, nest=True, lonlat=True)
    a_pos = _offset(blon, blat, inner, 0.25)
    b_pos = _offset(blon, blat, inner, -0.4)
    nside = 2**BORDER_ORDER
    assert hp.ang2pix(nside, *a_pos, nest=True, lonlat=True) == pix
    assert hp.ang2pix(nside, *b_pos, nest=True, lonlat=True) != pix
    forced = {r["object_id"]: r for r in field.forced.to_pylist()}
    forced2 = {r["object_id"]: r for r in field.forced2.to_pylist()}
    good = next(
        r
        for r in field.specz.to_pylist()
        if r["object_id"] in forced
        and _clean(forced[r["object_id"]])
        and _clean(forced2[r["object_id"]])
        and r["specz_flag_homogeneous"]
        and 0.1 < r["specz_redshift"] < 1
        and 0 < r["specz_redshift_err"] < 0.004
    )
    base = max(forced) + 1
    ids = {"A": base, "B": base + 1}
    new_forced, new_forced2, new_specz = [], [], []
    for name, (ra, dec) in (("A", a_pos), ("B", b_pos)):
        new_forced.append(
            {**forced[good["object_id"]], "object_id": ids[name], "ra": ra, "dec": dec}
        )
        new_forced2.append({**forced2[good["object_id"]], "object_id": ids[name]})
        new_specz.append(
            {
                **good,
                "object_id": ids[name],
                "specz_name": STRADDLE,
                "specz_ra": blon,
                "specz_dec": blat,
            }
        )
    paths = {}
    for key, table, extra in (
        ("forced", field.forced, new_forced),
        ("forced2", field.forced2, new_forced2),
        ("specz", field.specz, new_specz),
    ):
        paths[key] = folder / f"simulated_{key}.parquet"
        pq.write_table(_with_rows(table, extra), paths[key])
    return {"paths": paths, "ids": ids}


def load_field(root: Path, paths: dict[str, Path], **config) -> Warehouse:
    wh = Warehouse.init(root, Config(max_rows_per_partition=200, **config))
    wh.load(registry.get("hsc-forced"), [paths["forced"], paths["forced2"]])
    wh.load(registry.get("hsc-specz"), [paths["specz"]])
    return wh


@pytest.fixture(scope="package")
def straddling(tmp_path_factory):
    """(warehouse, {"A": id, "B": id}): the straddling field loaded (partitions of <= 200 rows)."""
    folder = tmp_path_factory.mktemp("straddling")
    planted = straddling_field(folder)
    return load_field(folder / "wh", planted["paths"]), planted["ids"]
