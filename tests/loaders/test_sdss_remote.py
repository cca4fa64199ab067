"""Live tests against SDSS SkyServer and the Science Archive Server (``pytest -m remote_data``):
r-band cutouts of two real Galaxy Zoo 2 Stripe 82 galaxies. ``$GWH_SDSS_URL`` and
``$GWH_SDSS_SAS_URL`` may point them at other hosts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from loaders.galaxy_zoo import load_galaxy_zoo
from loaders.images import decode_image
from loaders.sdss import fetch_sdss_cutouts

pytestmark = pytest.mark.remote_data

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "galaxy_zoo2"


def test_two_galaxy_zoo_galaxies(make_warehouse):
    wh = make_warehouse()
    load_galaxy_zoo(wh, [SAMPLE / "gz2_stripe82_coadd2_sample200.csv"])
    result = fetch_sdss_cutouts(wh, band="r", pixels=40, limit=2)
    assert result.cutouts >= 1
    for row in pq.read_table(result.path).to_pylist():
        image = decode_image(row["r_image"], (40, 40))
        assert np.isfinite(image[20, 20]) and row["simulated"] is False
