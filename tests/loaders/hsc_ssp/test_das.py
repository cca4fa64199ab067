"""loaders/hsc_ssp/das.py: batch lists, single GETs and batch uploads mapped back to objects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from loaders.hsc_ssp.das import (
    fetch_batch,
    fetch_cutout,
    filter_name,
    mapping_path,
    read_mapping,
    write_batch_lists,
)
from loaders.hsc_ssp.tars import members_to_objects, safe_extract
from loaders.http.session import Credentials
from tests.support import replay_server as support
from tests.support.replay_server import DATA_DIR, install_hsc_ssp
from warehouse.errors import ArchiveError, AuthenticationError, CutoutError

replay_server = support.replay_server  # the fixture factory

CUTOUT = "/das_cutout/pdr2/cgi-bin/cutout"
HEADER = "#?\tra\tdec\tsw\tsh\tfilter\trerun\timage\tvariance\tmask\ttype"


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch):
    for var in ("GWH_HSC_SSP_URL", "HSC_SSP_CAS_USER", "HSC_SSP_CAS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server(replay_server):
    return replay_server()


@pytest.fixture
def recorded_rows() -> list[tuple[int, float, float]]:
    """The five real objects of the recorded catalog answer (object_id, ra, dec)."""
    table = Table.read(DATA_DIR / "response_query_region.fits")
    return [(int(r["object_id"]), float(r["ra"]), float(r["dec"])) for r in table]


# -- list files ------------------------------------------------------------------------------------


def test_lists_hold_at_most_1000_rows_one_filter_each_with_mapping(tmp_path):
    rng = np.random.default_rng(7)
    ids = 37485259083748138 + np.arange(2500, dtype=np.int64) * 7
    rows = list(
        zip(
            ids.tolist(),
            rng.uniform(30, 40, 2500).tolist(),
            rng.uniform(-6, -4, 2500).tolist(),
            strict=True,
        )
    )
    paths = write_batch_lists(rows, bands="gr", size=20, rerun="pdr2_wide", out_dir=tmp_path)

    assert [p.name for p in paths] == [f"cutouts-{b}-{i:04d}.txt" for b in "gr" for i in range(3)]
    for path, band, start, n in zip(
        paths, "gggrrr", [0, 1000, 2000] * 2, [1000, 1000, 500] * 2, strict=True
    ):
        lines = path.read_text().splitlines()
        assert lines[0] == HEADER
        assert len(lines) - 1 == n
        fields = [line.split("\t") for line in lines[1:]]
        assert {len(f) for f in fields} == {10}
        assert {f[4] for f in fields} == {f"HSC-{band.upper()}"}
        # sw/sh are the DAS's semi-width/height: a 20" x 20" cutout asks for 10arcsec each
        assert fields[0][2:4] == ["10arcsec", "10arcsec"] and fields[0][5:] == [
            "pdr2_wide",
            "true",
            "true",
            "true",
            "coadd",
        ]
        assert [float(f[0]) for f in fields] == [r[1] for r in rows[start : start + n]]

        mapping = json.loads(mapping_path(path).read_text())
        assert mapping["band"] == band and mapping["filter"] == f"HSC-{band.upper()}"
        assert [m["row"] for m in mapping["rows"]] == list(range(n))
        assert [m["object_id"] for m in mapping["rows"]] == ids[start : start + n].tolist()
        assert [m["dec"] for m in mapping["rows"]] == [r[2] for r in rows[start : start + n]]


def test_max_rows_is_respected_and_bounded(tmp_path, recorded_rows):
    paths = write_batch_lists(recorded_rows, ["i"], "10asec", "pdr2_wide", tmp_path, max_rows=2)
    assert [len(p.read_text().splitlines()) - 1 for p in paths] == [2, 2, 1]
    with pytest.raises(ValueError, match="max_rows must be between 1 and 1000"):
        write_batch_lists(recorded_rows, ["i"], 20, "pdr2_wide", tmp_path, max_rows=1001)


@pytest.mark.parametrize(
    "row,match",
    [
        ((3.7485259083748138e16, 34.0, -5.0), "object_id must be an integer"),
        ((1, 360.0, -5.0), r"ra must be in \[0, 360\)"),
        ((1, 34.0, 91.0), r"dec must be in \[-90, 90\]"),
        ((1, float("nan"), 0.0), "ra must be"),
    ],
)
def test_bad_rows_are_refused(tmp_path, row, match):
    with pytest.raises(ValueError, match=match):
        write_batch_lists([row], "g", 20, "pdr2_wide", tmp_path)


@pytest.mark.parametrize("size", [0, -5, "0arcsec", "0.0arcmin", "00deg", "0", "-5arcsec"])
def test_a_size_of_zero_or_less_is_refused_before_any_list_is_written(tmp_path, size):
    out = tmp_path / "lists"
    with pytest.raises(ValueError, match="cutout size must be"):
        write_batch_lists([(1, 34.0, -5.0)], "g", size, "pdr2_wide", out)
    assert not out.exists()


@pytest.mark.parametrize("size", [2117, "2117arcsec", "35.5arcmin", "5deg", "1deg"])
def test_a_size_beyond_the_services_largest_cutout_is_refused(tmp_path, size):
    """The DAS cuts at most about 3 x 3 patches (2116.8"): a 5deg list was written, and every
    row of it would have come back as an error."""
    out = tmp_path / "lists"
    with pytest.raises(ValueError, match=f"cutout size {size}(arcsec)? is larger than the DAS"):
        write_batch_lists([(1, 34.0, -5.0)], "g", size, "pdr2_wide", out)
    assert not out.exists()


def test_the_largest_cutout_the_service_gives_is_accepted(tmp_path):
    for size in ("2116.8arcsec", "35arcmin", "0.58deg", 2116.8):
        path = write_batch_lists([(1, 34.0, -5.0)], "g", size, "pdr2_wide", tmp_path / str(size))
        assert path


def test_a_positive_size_in_any_unit_is_kept_as_written(tmp_path):
    for size in ("0.5arcmin", "0.00833deg", "20", "10asec"):
        path = write_batch_lists([(1, 34.0, -5.0)], "g", size, "pdr2_wide", tmp_path / size)[0]
        assert read_mapping(mapping_path(path))["size"] == size


def test_numpy_int64_ids_stay_exact(tmp_path):
    big = np.int64(2**62 + 12345)
    path = write_batch_lists([(big, 34.0, -5.0)], "y", 20, "pdr2_wide", tmp_path)[0]
    assert read_mapping(mapping_path(path))["rows"][0]["object_id"] == 2**62 + 12345


def test_filter_names():
    assert [filter_name(b) for b in "grizy"] == ["HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y"]
    assert filter_name("HSC-I2") == "HSC-I2" and filter_name("NB0921") == "NB0921"
    with pytest.raises(ValueError, match="unknown HSC band 'u'"):
        filter_name("u")


# -- member names ----------------------------------------------------------------------------------


# -- upload and tar --------------------------------------------------------------------------------


def test_batch_upload_maps_every_member_to_its_object(server, tmp_path, recorded_rows):
    archive = install_hsc_ssp(server)
    lists = write_batch_lists(recorded_rows, "g", "20arcsec", "pdr2_wide", tmp_path / "lists")
    tar = fetch_batch(
        lists[0], tmp_path / "tars", credentials=archive.credentials, base_url=server.url
    )

    assert tar == tmp_path / "tars" / "cutouts-g-0000.tar"
    assert archive.protocol_errors == []
    assert archive.lists == [lists[0].read_text()]
    post = server.calls(CUTOUT, "POST")[0]
    assert post.headers["Content-Type"].startswith("multipart/form-data")
    assert post.basic_auth() == (archive.user, archive.password)

    pairs = members_to_objects(tar, mapping_path(lists[0]))
    assert [(m.split("/")[1], oid, band) for m, oid, band in pairs] == [
        (f"{n + 2}-cutout-HSC-G-8523-pdr2_wide.fits", oid, "g")
        for n, (oid, _, _) in enumerate(recorded_rows)
    ]

    files = safe_extract(tar, tmp_path / "fits")
    assert len(files) == 5
    with fits.open(files[0]) as hdul:
        assert hdul["IMAGE"].data.shape == (180, 179)
        assert hdul[0].header["FLUXMAG0"] == pytest.approx(10 ** (0.4 * 27.0))


def test_rows_without_coverage_do_not_shift_the_mapping(server, tmp_path, recorded_rows):
    # rows 1 and 2 have dec > -4.9990; the archive returns nothing for them
    archive = install_hsc_ssp(server, uncovered=lambda ra, dec: dec > -4.9990)
    lists = write_batch_lists(recorded_rows, "i", 20, "pdr2_wide", tmp_path)
    tar = fetch_batch(lists[0], tmp_path, credentials=archive.credentials, base_url=server.url)
    got = [oid for _, oid, _ in members_to_objects(tar, mapping_path(lists[0]))]
    assert got == [recorded_rows[i][0] for i in (0, 3, 4)]


def test_fetch_batch_is_resumable(server, tmp_path, recorded_rows):
    archive = install_hsc_ssp(server)
    lists = write_batch_lists(recorded_rows, "r", 20, "pdr2_wide", tmp_path)
    kw = {"credentials": archive.credentials, "base_url": server.url}
    tar = fetch_batch(lists[0], tmp_path, **kw)
    first = tar.read_bytes()
    assert fetch_batch(lists[0], tmp_path, **kw) == tar
    assert len(server.calls(CUTOUT, "POST")) == 1  # complete tar: no second request

    tar.write_bytes(first[: len(first) // 3])  # a damaged tar is fetched again
    fetch_batch(lists[0], tmp_path, **kw)
    assert len(server.calls(CUTOUT, "POST")) == 2
    assert tar.read_bytes() == first


def test_fetch_batch_retries_503_and_resets(server, tmp_path, recorded_rows):
    archive = install_hsc_ssp(server)
    server.inject("status", count=1, status=503, path=CUTOUT)
    server.inject("reset", count=1, path=CUTOUT)
    lists = write_batch_lists(recorded_rows, "z", 20, "pdr2_wide", tmp_path)
    sleeps = Sleeps()
    tar = fetch_batch(
        lists[0], tmp_path, credentials=archive.credentials, base_url=server.url, sleep=sleeps
    )
    assert sleeps == [1.0, 2.0]
    assert len(members_to_objects(tar, mapping_path(lists[0]))) == 5
    sent = [r.form()["list"][1] for r in server.calls(CUTOUT, "POST")]
    assert sent == [lists[0].read_bytes()] * 3  # the file was re-sent whole each time


def test_fetch_batch_wrong_password(server, tmp_path, recorded_rows):
    archive = install_hsc_ssp(server)
    lists = write_batch_lists(recorded_rows, "g", 20, "pdr2_wide", tmp_path)
    with pytest.raises(AuthenticationError, match="HSC_SSP_CAS_PASSWORD") as info:
        fetch_batch(
            lists[0],
            tmp_path,
            credentials=Credentials(archive.user, "nope-Secret9"),
            base_url=server.url,
        )
    assert "nope-Secret9" not in str(info.value)
    assert not list(tmp_path.glob("*.tar"))


@pytest.mark.parametrize(
    ("size", "semi"),
    [
        ("20arcsec", "10arcsec"),
        (20, "10arcsec"),
        ("0.5arcmin", "0.25arcmin"),
        ("0.01", "0.005"),
        ("0.0001arcsec", "0.00005arcsec"),  # fixed point, as the service reads sizes
    ],
)
def test_list_rows_ask_for_the_semi_width_of_the_side(size, semi, tmp_path):
    (path,) = write_batch_lists([(1, 34.0, -5.0)], "g", size, "pdr2_wide", tmp_path)
    assert path.read_text().splitlines()[1].split("\t")[2:4] == [semi, semi]
    assert json.loads(mapping_path(path).read_text())["size"] != semi  # the side, as given


def test_fetch_batch_refuses_oversized_or_mixed_lists(tmp_path):
    big = tmp_path / "big.txt"
    row = "34.0\t-5.0\t20arcsec\t20arcsec\tHSC-G\tpdr2_wide\ttrue\ttrue\ttrue\tcoadd"
    big.write_text("\n".join([HEADER] + [row] * 1001) + "\n")
    creds = Credentials("u", "p")
    with pytest.raises(CutoutError, match="1001 rows; the service takes at most 1000"):
        fetch_batch(big, tmp_path, credentials=creds, base_url="http://127.0.0.1:9")
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("\n".join([HEADER, row, row.replace("HSC-G", "HSC-R")]) + "\n")
    with pytest.raises(CutoutError, match="mixes filters"):
        fetch_batch(mixed, tmp_path, credentials=creds, base_url="http://127.0.0.1:9")


def test_members_to_objects_refuses_a_mismatched_mapping(server, tmp_path, recorded_rows):
    archive = install_hsc_ssp(server)
    g, r = (write_batch_lists(recorded_rows, b, 20, "pdr2_wide", tmp_path / b)[0] for b in "gr")
    tar = fetch_batch(g, tmp_path, credentials=archive.credentials, base_url=server.url)
    with pytest.raises(CutoutError, match="is HSC-G/pdr2_wide, but the list was HSC-R"):
        members_to_objects(tar, mapping_path(r))
    short = read_mapping(mapping_path(g))
    short["rows"] = short["rows"][:2]
    with pytest.raises(CutoutError, match="names list row 2, but the list has 2 rows"):
        members_to_objects(tar, short)


# -- single cutout ---------------------------------------------------------------------------------


def test_single_cutout_get(server, tmp_path):
    archive = install_hsc_ssp(server)
    dest = fetch_cutout(
        34.0,
        -5.0,
        tmp_path / "c.fits",
        band="g",
        size="20arcsec",
        credentials=archive.credentials,
        base_url=server.url,
    )
    assert dest.read_bytes() == (DATA_DIR / "image.fits").read_bytes()
    query = {k: v[0] for k, v in server.calls(CUTOUT, "GET")[0].query.items()}
    assert query == {
        "ra": "34.0",
        "dec": "-5.0",
        "sw": "10arcsec",  # the DAS reads sw/sh as semi-width/height: a 20" x 20" cutout
        "sh": "10arcsec",
        "type": "coadd",
        "image": "on",
        "mask": "on",
        "variance": "on",
        "filter": "HSC-G",
        "rerun": "pdr2_wide",
    }


def test_single_cutout_outside_coverage(server, tmp_path):
    archive = install_hsc_ssp(server, uncovered=lambda ra, dec: True)
    with pytest.raises(ArchiveError, match="HTTP 404"):
        fetch_cutout(
            150.1213,
            40.235916,
            tmp_path / "c.fits",
            band="i",
            credentials=archive.credentials,
            base_url=server.url,
        )
    assert list(tmp_path.iterdir()) == []


def test_single_cutout_that_is_not_fits_is_a_cutout_error(server, tmp_path):
    archive = install_hsc_ssp(server)
    server.add_route("GET", CUTOUT, lambda req: support.Response.text("<html>error</html>"))
    with pytest.raises(CutoutError, match="not a FITS file"):
        fetch_cutout(
            34.0,
            -5.0,
            tmp_path / "c.fits",
            band="r",
            credentials=archive.credentials,
            base_url=server.url,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_full_filter_name_is_one_band(tmp_path):
    paths = write_batch_lists([(1, 34.0, -5.0)], "HSC-I2", 20, "pdr2_wide", tmp_path)
    assert [p.name for p in paths] == ["cutouts-HSC-I2-0000.txt"]
    assert paths[0].read_text().splitlines()[1].split("\t")[4] == "HSC-I2"


@pytest.mark.parametrize("text", ["{}", "[]", '{"band": "g", "filter": "HSC-G", "rows": [7]}'])
def test_a_mapping_that_is_not_ours_is_named_with_what_to_give(tmp_path, text):
    """It said "cutout mapping lacks 'rows', 'band' or 'filter'; rewrite it with
    write_batch_lists" (no file named, and an internal function), or an AttributeError."""
    path = tmp_path / "list.json"
    path.write_text(text)
    with pytest.raises(CutoutError, match=f"^cutout mapping {path}"):
        read_mapping(path)
