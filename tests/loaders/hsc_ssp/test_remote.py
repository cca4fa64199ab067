"""Live tests against the real HSC-SSP archive (``pytest -m remote_data``).

They need an HSC-SSP account in ``$HSC_SSP_CAS_USER`` / ``$HSC_SSP_CAS_PASSWORD`` and are
skipped without one. ``$GWH_HSC_SSP_URL`` may point them at another host.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from loaders.hsc_ssp.das import (
    fetch_batch,
    fetch_cutout,
    mapping_path,
    write_batch_lists,
)
from loaders.hsc_ssp.sql_cache import preview_sql, run_sql
from loaders.hsc_ssp.tars import members_to_objects, safe_extract

pytestmark = [
    pytest.mark.remote_data,
    pytest.mark.skipif(
        not (os.environ.get("HSC_SSP_CAS_USER") and os.environ.get("HSC_SSP_CAS_PASSWORD")),
        reason="needs HSC_SSP_CAS_USER and HSC_SSP_CAS_PASSWORD",
    ),
]

# (150.0913, 2.205916) lies in pdr2_wide tract 9813, patch 5,4, in all five bands
COVERED = (150.0913, 2.205916)
SQL = (
    "SELECT object_id, ra, dec FROM pdr2_wide.forced "
    "WHERE coneSearch(coord, 150.0913, 2.205916, 10.0) ORDER BY object_id LIMIT 5"
)


def test_live_sql_job_round_trip(tmp_path):
    path = run_sql(SQL, release="pdr2", cache_dir=tmp_path, poll_timeout=300)
    table = Table.read(path)
    assert table["object_id"].dtype.kind == "i" and table["object_id"].dtype.itemsize == 8
    assert 1 <= len(table) <= 5
    assert np.all(np.abs(table["ra"] - COVERED[0]) < 0.01)


def test_live_preview():
    preview = preview_sql(SQL, release="pdr2")
    assert preview.fields[:3] == ["object_id", "ra", "dec"]
    assert all(isinstance(v, str) for v in preview.rows[0])


def test_live_single_cutout(tmp_path):
    path = fetch_cutout(*COVERED, tmp_path / "c.fits", band="i", size="10arcsec")
    with fits.open(path) as hdul:
        assert hdul[1].data.ndim == 2
        # a 10" side (sw = sh = 5arcsec, the DAS's semi-width) at 0.168"/px: ~60 px, not ~119
        assert all(abs(n - 10 / 0.168) <= 2 for n in hdul[1].data.shape)
        assert hdul[0].header["FLUXMAG0"] == pytest.approx(10 ** (0.4 * 27.0), rel=1e-6)


def test_live_batch_cutouts(tmp_path):
    rows = [(1, *COVERED), (2, COVERED[0] + 0.001, COVERED[1])]
    lists = write_batch_lists(rows, "g", "10arcsec", "pdr2_wide", tmp_path / "lists")
    tar = fetch_batch(lists[0], tmp_path / "tars")
    pairs = members_to_objects(tar, mapping_path(lists[0]))
    assert sorted(oid for _, oid, _ in pairs) == [1, 2]
    assert all(p.suffix == ".fits" for p in safe_extract(tar, tmp_path / "fits"))
