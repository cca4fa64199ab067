"""Live tests against MAST's deep-field cutout service (``pytest -m remote_data``): an F160W
cutout in CANDELS GOODS-N. ``$GWH_MAST_URL`` may point them at another host."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from loaders.galaxy_zoo import load_galaxy_zoo
from loaders.images import decode_image
from loaders.mast.hst import fetch_hst_cutouts

pytestmark = pytest.mark.remote_data

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "galaxy_zoo2"


def test_an_f160w_cutout_in_goods_north(make_warehouse, tmp_path):
    with open(SAMPLE / "gz2_stripe82_coadd2_sample200.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[1][0:4] = ["1", "simulated", "189.49206", "62.20615"]  # a SIMULATED label
    path = tmp_path / "simulated_gz.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows[:2])
    wh = make_warehouse()
    load_galaxy_zoo(wh, [path])
    result = fetch_hst_cutouts(wh, filter="F160W", pixels=64)
    (row,) = pq.read_table(result.path).to_pylist()
    assert row["f160w_survey"].endswith("60mas")
    assert np.isfinite(decode_image(row["f160w_image"], (64, 64))).mean() > 0.9
