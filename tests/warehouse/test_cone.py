"""Cone searches are exact at partition borders, across RA 0/360 and at the poles."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from warehouse.healpix import angular_separation_deg


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    """3,000 objects clustered around partition-splitting spots, RA 0/360 and both poles."""
    from warehouse.config import Config
    from warehouse.core import Warehouse

    rng = np.random.default_rng(11)
    centres = [(0.0, 0.0), (359.99, 1.0), (45.0, 89.99), (200.0, -89.99), (150.1, 2.2)]
    ra, dec = [], []
    for c_ra, c_dec in centres:
        r = np.radians(0.05) * np.sqrt(rng.uniform(0, 1, 600))
        t = rng.uniform(0, 2 * np.pi, 600)
        d = np.clip(c_dec + np.degrees(r * np.sin(t)), -90, 90)
        a = np.mod(c_ra + np.degrees(r * np.cos(t)) / np.maximum(np.cos(np.radians(d)), 1e-3), 360)
        ra.append(a)
        dec.append(d)
    ra, dec = np.concatenate(ra), np.concatenate(dec)
    ids = 43158034708430001 + np.arange(ra.size)
    d = tmp_path_factory.mktemp("cone")
    pq.write_table(
        pa.table({"object_id": pa.array(ids, pa.int64()), "ra": ra, "dec": dec}), d / "f.parquet"
    )
    wh = Warehouse.init(d / "wh", Config(max_rows_per_partition=40))
    wh.load(registry.get("hsc-forced"), [d / "f.parquet"])
    return wh, ids, ra, dec, centres


def test_many_partitions(sky):
    wh = sky[0]
    assert len(wh.current_version("hsc_forced").partitions) > 50


@pytest.mark.parametrize("radius", [5.0, 30.0, 120.0, 400.0])
def test_cone_equals_brute_force(sky, radius):
    wh, ids, ra, dec, centres = sky
    for c_ra, c_dec in centres:
        got = wh.cone(c_ra, c_dec, radius).column("object_id").to_pylist()
        want = ids[angular_separation_deg(ra, dec, c_ra, c_dec) * 3600 <= radius]
        assert sorted(got) == sorted(want.tolist()), (c_ra, c_dec, radius)


def test_cones_centred_on_partition_corners(sky):
    """Centres placed exactly on HEALPix pixel corners of the partitions themselves."""
    import healpy as hp

    wh, ids, ra, dec, _ = sky
    parts = wh.current_version("hsc_forced").partitions
    for p in parts[:: max(1, len(parts) // 25)]:
        corners = hp.vec2ang(hp.boundaries(2**p.order, p.pixel, step=1, nest=True).T, lonlat=True)
        for c_ra, c_dec in zip(*corners, strict=True):
            got = wh.cone(float(c_ra), float(c_dec), 60.0).column("object_id").to_pylist()
            want = ids[angular_separation_deg(ra, dec, c_ra, c_dec) * 3600 <= 60.0]
            assert sorted(got) == sorted(want.tolist())


def test_cone_reads_exactly_the_rows_of_many_paged_partitions(tmp_path):
    """The catalog layout writes small pages with a page index, so DuckDB skips the pages of
    every column outside the cone's ``_healpix_29`` ranges: the rows found are still exact."""
    from warehouse.config import Config
    from warehouse.core import Warehouse
    from warehouse.store.contracts import CATALOG_LAYOUT

    rng = np.random.default_rng(12)
    n = 40_000
    ra, dec = rng.uniform(149.5, 150.5, n), rng.uniform(1.5, 2.5, n)
    ids = 43158034708430001 + np.arange(n)
    mag = rng.normal(22, 1, n)
    pq.write_table(
        pa.table({"object_id": pa.array(ids, pa.int64()), "ra": ra, "dec": dec, "i_mag": mag}),
        tmp_path / "f.parquet",
    )
    wh = Warehouse.init(tmp_path / "wh", Config(max_rows_per_partition=100_000))
    wh.load(registry.get("hsc-forced"), [tmp_path / "f.parquet"])
    cv = wh.current_version("hsc_forced")
    assert cv is not None and len(cv.partitions) == 1
    chunk = pq.read_metadata(cv.files()[0]).row_group(0)
    mag_chunk = chunk.column(chunk.num_columns - 1)  # any column: all share the layout
    assert mag_chunk.has_column_index and mag_chunk.has_offset_index
    assert CATALOG_LAYOUT.page_bytes is not None
    assert mag_chunk.total_uncompressed_size > 4 * CATALOG_LAYOUT.page_bytes  # several pages
    for i in rng.integers(0, n, 25):
        for radius in (10.0, 60.0, 300.0):
            got = wh.cone(float(ra[i]), float(dec[i]), radius)
            want = angular_separation_deg(ra, dec, ra[i], dec[i]) * 3600 <= radius
            assert sorted(got.column("object_id").to_pylist()) == sorted(ids[want].tolist())
            got_ids, got_mag = got.column("object_id").to_pylist(), got.column("i_mag").to_pylist()
            assert dict(zip(got_ids, got_mag, strict=True)) == dict(
                zip(ids[want].tolist(), mag[want].tolist(), strict=True)
            )
