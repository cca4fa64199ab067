"""Live tests against MAST (``pytest -m remote_data``): the Hubble Source Catalog through
astroquery's Mashup client. ``$GWH_MAST_URL`` may point them at another host."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from loaders.mast.hubble_source_catalog import (
    fetch_hubble_source_catalog,
    match_sources,
)
from loaders.mast.mashup import resolve_target

pytestmark = pytest.mark.remote_data


def test_m15_cone_and_the_detail_of_one_match(tmp_path):
    result = fetch_hubble_source_catalog("322.525 12.167", box_deg=0.01, cache_dir=tmp_path)
    table = pq.read_table(result.path)
    assert table.num_rows > 0 and "MatchID" in table.column_names
    detail = match_sources(table.column("MatchID")[0].as_py())
    assert detail.num_rows >= 1 and "ImageName" in detail.column_names


def test_a_name_resolves():
    ra, dec = resolve_target("M15")
    assert ra == pytest.approx(322.49, abs=0.05) and dec == pytest.approx(12.17, abs=0.05)


def test_the_smc_with_a_constraint_pages_and_resumes(tmp_path):
    kw = {
        "box_deg": 0.02,
        "where": "A_F555W_N >= 1 AND A_F814W_N >= 1",
        "cache_dir": tmp_path,
        "pagesize": 500,
    }
    first = fetch_hubble_source_catalog("SMC", **kw)
    again = fetch_hubble_source_catalog("SMC", **kw)
    assert again.pages_fetched == 0 and again.rows == first.rows
