"""HST cutouts through astroquery's Zcut client, against the local replay server answering the
real recorded CANDELS GOODS-N cutout (tests/data/hst_candels_astrocut: ACS F606W, F814W, F850LP
drizzled mosaics at 0.03"/px) and the recorded survey list."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from loaders.galaxy_zoo import load_galaxy_zoo
from loaders.images import decode_image
from loaders.mast.hst import ab_zeropoint, choose_survey, fetch_hst_cutouts, pick_filter_hdu
from tests.support import replay_server as support
from tests.support.replay_server import HST_FILE, install_mast
from warehouse.errors import ArchiveError, CutoutError

replay_server = support.replay_server

DATA = Path(__file__).resolve().parents[2] / "data"
GZ_SAMPLE = DATA / "galaxy_zoo2" / "gz2_stripe82_coadd2_sample200.csv"
# inside the recorded 100 x 100 px (3") cutout: its centre, and 0.4" to the north-east
OBJECTS = [(1, 189.49206, 62.20615), (2, 189.4922, 62.2062)]


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def simulated_labels(path: Path, objects) -> Path:
    """Galaxy Zoo 2 rows (real vote columns) moved to GOODS-N positions: SIMULATED labels."""
    with open(GZ_SAMPLE, newline="") as fh:
        rows = list(csv.reader(fh))
    out = [rows[0]]
    for k, (objid, ra, dec) in enumerate(objects):
        row = rows[1 + k][:]
        row[0:4] = [str(objid), "simulated", repr(ra), repr(dec)]
        out.append(row)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(out)
    return path


@pytest.fixture
def setup(replay_server, make_warehouse, tmp_path, monkeypatch):
    server = replay_server()
    archive = install_mast(server)
    monkeypatch.setenv("GWH_MAST_URL", server.url)
    wh = make_warehouse()
    objects = [*OBJECTS, (3, 150.1, 2.2)]  # the last is in no recorded survey
    load_galaxy_zoo(wh, [simulated_labels(tmp_path / "simulated_gz.csv", objects)])
    return server, archive, wh


def test_cutouts_are_exact_wcs_cuts_of_the_recorded_mosaic(setup):
    server, archive, wh = setup
    result = fetch_hst_cutouts(wh, filter="F814W", pixels=40, sleep=Sleeps())
    assert (result.objects, result.cutouts, result.no_coverage) == (3, 2, 1)
    stored = {r["object_id"]: r for r in pq.read_table(result.path).to_pylist()}
    with fits.open(HST_FILE) as hdul:
        hdu = next(h for h in hdul[1:] if "f814w" in h.header["ORIG_FLE"])
        data, wcs = hdu.data, WCS(hdu.header)
        for objid, ra, dec in OBJECTS:
            row = stored[objid]
            x, y = wcs.world_to_pixel(SkyCoord(ra, dec, unit="deg"))
            xc, yc = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
            cut = decode_image(row["f814w_image"], (40, 40))
            assert np.array_equal(cut, data[yc - 20 : yc + 20, xc - 20 : xc + 20])
            assert row["f814w_filter"] == "F814W" and row["f814w_pixel_scale"] == 0.03
            assert row["f814w_source"] == "hlsp_candels_hst_acs_gn-tot-30mas_f814w_v1.0_drz.fits"
            assert row["f814w_zeropoint"] == pytest.approx(25.947, abs=0.01)  # ACS/WFC F814W
            assert row["f814w_survey"] == "candels_gn_30mas" and row["simulated"] is False
            assert row["bands"] == "f814w"
    labels = wh.query("SELECT object_id, gz2_label FROM hst_cutouts ORDER BY 1").to_pylist()
    assert [r["object_id"] for r in labels] == [1, 2]


def test_a_rerun_asks_mast_nothing(setup):
    server, archive, wh = setup
    fetch_hst_cutouts(wh, filter="F814W", pixels=40, sleep=Sleeps())
    n = len(server.requests)
    again = fetch_hst_cutouts(wh, filter="F814W", pixels=40, sleep=Sleeps())
    assert len(server.requests) == n and again.requested == 0 and again.cutouts == 2


def test_a_filter_the_survey_lacks_is_a_clear_error(setup):
    server, archive, wh = setup
    with pytest.raises(ArchiveError, match="no HST F160W cutouts.*candels_gn_60mas"):
        fetch_hst_cutouts(wh, filter="F160W", pixels=40, sleep=Sleeps())
    with pytest.raises(ArchiveError, match="has F606W,F814W,F850LP there, not F105W"):
        fetch_hst_cutouts(wh, filter="F105W", pixels=40, survey="candels_gn_30mas", sleep=Sleeps())


def test_a_transient_error_is_retried(setup):
    server, archive, wh = setup
    server.inject("status", count=1, status=503, path="/zcut/api/v0.1/astrocut")
    sleeps = Sleeps()
    assert fetch_hst_cutouts(wh, filter="F814W", pixels=40, sleep=sleeps).cutouts == 2
    assert sleeps == [1.0]


def test_bad_filter_name(setup):
    with pytest.raises(CutoutError, match="HST filter name such as F160W"):
        fetch_hst_cutouts(setup[2], filter="red")


def test_survey_choice_follows_the_camera():
    surveys = ["candels_gn_60mas", "candels_gn_30mas", "goods_north"]
    assert choose_survey(surveys, "F160W") == "candels_gn_60mas"
    assert choose_survey(surveys, "F606W") == "candels_gn_30mas"
    assert choose_survey(surveys, "F606W", "goods_north") == "goods_north"
    assert choose_survey(surveys, "F606W", "cosmos") is None
    assert choose_survey([], "F606W") is None


def test_filters_and_zeropoints_from_the_recorded_headers():
    with fits.open(HST_FILE) as hdul:
        hdu, _ = pick_filter_hdu([hdul], "F606W")
        assert "f606w" in hdu.header["ORIG_FLE"]
        # STScI ACS/WFC AB zeropoint of F606W is about 26.5
        assert ab_zeropoint(hdu.header) == pytest.approx(26.5, abs=0.05)
        assert pick_filter_hdu([hdul], "F160W") == (None, {"F606W", "F814W", "F850LP"})
    assert ab_zeropoint(fits.Header()) is None
