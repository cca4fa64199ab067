"""SDSS cutouts through astroquery, against the local replay server: SkyServer SQL answers the
real recorded rows (tests/data/sdss_skyserver/xid_im.txt); the frames are SIMULATED (no real
SDSS frame is available offline; see tests.support.replay_server.simulated_sdss_frame), with
pixel (x, y) = 1000 y + x so a test knows exactly which pixels a cutout copied. The client code
(frame lookup, download, WCS cutout) is the real one."""

from __future__ import annotations

import bz2
import csv
import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from loaders import sdss
from loaders.galaxy_zoo import load_galaxy_zoo
from loaders.http.session import RetryPolicy
from loaders.images import decode_image, label_mapping
from loaders.sdss import (
    decode_objid,
    fetch_sdss_cutouts,
    frame_lookup_sql,
    nearest_match,
    sas_base_url,
)
from tests.support import replay_server as support
from tests.support.replay_server import SDSS_DIR, install_sdss, simulated_sdss_frame
from warehouse.errors import ArchiveError, CutoutError

replay_server = support.replay_server

DATA = Path(__file__).resolve().parents[1] / "data"
GZ_SAMPLE = DATA / "galaxy_zoo2" / "gz2_stripe82_coadd2_sample200.csv"
# two real SDSS objects of the recorded answer (xid_sp.txt is the first: a z = 0.046 galaxy)
OBJECTS = [
    (1237652943176138868, 2.02344596303, 14.8398237521),
    (1237649953859240024, 2.02347655279, 14.839802595),
]


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def simulated_labels(path: Path, objects, extra_real_rows: int = 0) -> Path:
    """A Galaxy Zoo 2 CSV whose rows carry these objects' ids and positions, with the vote
    columns of real GZ2 rows: SIMULATED labels (no GZ2 galaxy lies at these positions)."""
    with open(GZ_SAMPLE, newline="") as fh:
        rows = list(csv.reader(fh))
    out = [rows[0]]
    for k, (objid, ra, dec) in enumerate(objects):
        row = rows[1 + k][:]
        row[0:4] = [str(objid), "simulated", repr(ra), repr(dec)]
        out.append(row)
    out += rows[len(objects) + 1 : len(objects) + 1 + extra_real_rows]
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(out)
    return path


@pytest.fixture(autouse=True)
def _no_ambient_urls(monkeypatch):
    for var in ("GWH_SDSS_URL", "GWH_SDSS_SAS_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def setup(replay_server, make_warehouse, tmp_path, monkeypatch):
    server = replay_server()
    archive = install_sdss(server)
    monkeypatch.setenv("GWH_SDSS_URL", server.url)
    wh = make_warehouse()
    load_galaxy_zoo(wh, [simulated_labels(tmp_path / "simulated_gz.csv", OBJECTS, 1)])
    return server, archive, wh


def test_objid_packs_run_rerun_camcol_field():
    lines = (SDSS_DIR / "xid_im.txt").read_text().splitlines()[2:]
    for line in lines:
        _, _, objid, run, rerun, camcol, field = line.split(",")
        got = decode_objid(int(objid))
        assert (got["run"], got["rerun"], got["camcol"], got["field"]) == tuple(
            int(v) for v in (run, rerun, camcol, field)
        )


def test_cutouts_copy_the_frame_pixels_around_each_object(setup):
    server, archive, wh = setup
    result = fetch_sdss_cutouts(wh, band="r", pixels=40, sleep=Sleeps())
    assert (result.objects, result.cutouts, result.no_photoobj, result.off_frame) == (3, 2, 1, 0)
    assert archive.protocol_errors == []
    assert len(archive.frames) == 2  # one frame per object, each fetched once
    stored = {r["object_id"]: r for r in pq.read_table(result.path).to_pylist()}
    assert set(stored) == {objid for objid, _, _ in OBJECTS}
    for objid, ra, dec in OBJECTS:
        row = stored[objid]
        frame = fits.open(
            io.BytesIO(
                bz2.decompress(simulated_sdss_frame(row["run"], row["camcol"], row["field"], "r"))
            )
        )
        x, y = WCS(frame[0].header).world_to_pixel(SkyCoord(ra, dec, unit="deg"))
        xc, yc = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        cut = decode_image(row["r_image"], (40, 40))
        assert cut[20, 20] == 1000 * yc + xc  # the object's pixel on index size // 2
        assert np.array_equal(cut, frame[0].data[yc - 20 : yc + 20, xc - 20 : xc + 20])
        assert row["bands"] == "r" and row["r_height"] == row["r_width"] == 40
        assert row["r_zeropoint"] == 22.5 and row["r_pixel_scale"] == 0.396
        assert row["simulated"] is True  # the frames say SIMULATED, and so does the table
        assert row["sdss_objid"] == objid  # the nearest photometric object is itself
    table = wh.query("SELECT object_id, gz2_label, labels_table FROM sdss_cutouts")
    assert table.num_rows == 2 and set(table.column("labels_table").to_pylist()) == {"galaxy_zoo"}
    field = wh.current_version("sdss_cutouts").schema.field("gz2_label")
    assert label_mapping(field) is not None  # labels travel with their mapping


def test_a_rerun_fetches_nothing_and_loads_nothing(setup):
    server, archive, wh = setup
    fetch_sdss_cutouts(wh, sleep=Sleeps())
    n_requests = len(server.requests)
    version = wh.current_version("sdss_cutouts").path
    messages: list[str] = []
    again = fetch_sdss_cutouts(wh, sleep=Sleeps(), echo=messages.append)
    assert len(server.requests) == n_requests
    assert again.frames_fetched == 0 and again.cutouts == 2
    assert wh.current_version("sdss_cutouts").path == version
    assert any("3 done before, 0 to do" in m for m in messages)


def test_ctrl_c_keeps_finished_frames_and_a_rerun_does_the_rest(setup, monkeypatch):
    server, archive, wh = setup
    real = sdss._get_frame
    calls = []

    def interrupt_second(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sdss, "_get_frame", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        fetch_sdss_cutouts(wh, sleep=Sleeps())
    assert wh.current_version("sdss_cutouts") is None  # nothing half-loaded
    monkeypatch.setattr(sdss, "_get_frame", real)
    frames_before = len(archive.frames)
    result = fetch_sdss_cutouts(wh, sleep=Sleeps())
    assert result.frames_fetched == 1 and len(archive.frames) == frames_before + 1
    assert result.cutouts == 2


def test_a_transient_frame_error_is_retried(setup):
    server, archive, wh = setup
    server.inject("status", count=1, status=503, path="/sas/")
    sleeps = Sleeps()
    assert fetch_sdss_cutouts(wh, sleep=sleeps).cutouts == 2
    assert sleeps == [1.0]


def test_skyserver_down_is_a_clear_error(setup):
    server, archive, wh = setup
    server.inject("status", count=9, status=502, path="/dr17/")
    with pytest.raises(ArchiveError, match="SkyServer DR17 SQL.*HTTP 502.*gave up after 2"):
        fetch_sdss_cutouts(wh, sleep=Sleeps(), retry=RetryPolicy(attempts=2))


def test_objects_outside_sdss_are_a_clear_error(replay_server, make_warehouse, monkeypatch):
    server = replay_server()
    install_sdss(server)
    monkeypatch.setenv("GWH_SDSS_URL", server.url)
    wh = make_warehouse()
    load_galaxy_zoo(wh, [GZ_SAMPLE])  # real Stripe 82 galaxies: not in the recorded answer
    with pytest.raises(ArchiveError, match="no SDSS cutouts: none of the 200 objects"):
        fetch_sdss_cutouts(wh, sleep=Sleeps(), batch=100)


def test_a_second_band_adds_its_columns(setup):
    server, archive, wh = setup
    fetch_sdss_cutouts(wh, band="r", sleep=Sleeps())
    fetch_sdss_cutouts(wh, band="g", sleep=Sleeps())
    rows = wh.query("SELECT bands, r_height, g_height FROM sdss_cutouts").to_pylist()
    assert rows == [{"bands": "g,r", "r_height": 40, "g_height": 40}] * 2


def test_bad_arguments(setup):
    _, _, wh = setup
    with pytest.raises(CutoutError, match="SDSS band must be one of"):
        fetch_sdss_cutouts(wh, band="y")
    with pytest.raises(CutoutError, match="--pixels must be between"):
        fetch_sdss_cutouts(wh, pixels=2)
    with pytest.raises(CutoutError, match="no_such_table"):
        fetch_sdss_cutouts(wh, labels="no_such_table")


def test_lookup_sql_boxes_wrap_at_ra_zero():
    sql = frame_lookup_sql([(359.9999, 0.0)], 2.0)
    assert sql.count("p.ra BETWEEN") == 2 and "360.0" in sql and "AND 0.0004" in sql


def test_nearest_match_breaks_ties_by_objid():
    import pyarrow as pa

    cands = pa.table(
        {
            "ra": [1.0, 1.0],
            "dec": [0.0, 0.0],
            "objid": pa.array([9, 3], pa.int64()),
            "run": [1, 2],
            "rerun": [301, 301],
            "camcol": [1, 1],
            "field": [1, 1],
        }
    )
    assert nearest_match(1.0, 0.0, cands, 1.0)["objid"] == 3
    assert nearest_match(1.01, 0.0, cands, 1.0) is None


def test_sas_url_follows_skyserver_unless_set(monkeypatch):
    assert sas_base_url("https://skyserver.sdss.org") == "https://data.sdss.org/sas"
    assert sas_base_url("http://127.0.0.1:5") == "http://127.0.0.1:5/sas"
    assert sas_base_url("http://127.0.0.1:5", "http://mirror/sas") == "http://mirror/sas"
    monkeypatch.setenv("GWH_SDSS_SAS_URL", "http://other/sas/")
    assert sas_base_url("http://127.0.0.1:5") == "http://other/sas"
