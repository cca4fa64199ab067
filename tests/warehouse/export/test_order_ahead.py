"""The pixels of an export copied while its plan runs (plan.order_ahead, h5file._write_ahead):
the narrow ordering query gives the plan's order or nothing, an error the plan finds after the
copy began is still the one reported with nothing left behind, and an export of objects that
have no cutout at all says so. Every image is SIMULATED seeded noise."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.warehouse.cutouts.test_cutouts import BANDS, build_warehouse
from tests.warehouse.export.test_blocks import S, ingest_noise, noise
from warehouse.cutouts import ingest_arrays
from warehouse.export.plan import order_ahead


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """300 SIMULATED objects: the first 276 in sky order with five bands (image, variance,
    mask), 12 with g and r only, 12 with no cutout."""
    wh = build_warehouse(tmp_path_factory.mktemp("ahead"), n=300, cutout_rows=150)
    sky = wh.query("SELECT object_id FROM hsc_forced ORDER BY _healpix_29, object_id")
    ids = sky.column("object_id").to_pylist()
    ingest_noise(wh, ids[:-24])
    ingest_noise(wh, ids[-24:-12], bands=("g", "r"))
    return {"wh": wh, "full": ids[:-24], "partial": ids[-24:-12], "none": ids[-12:]}


def among(ids: list[int]) -> str:
    return f"SELECT * FROM hsc_forced WHERE object_id IN ({', '.join(map(str, ids))})"


def ordered(wh, sql: str, limit: int = 10**6):
    cv = wh.current_version("cutouts")
    with wh.reading(), wh.connect(shared=True) as con:
        return order_ahead(con, sql, [], set(cv.schema.names), BANDS, limit)


def test_the_order_is_the_exported_order(field, cli, tmp_path):
    wh = field["wh"]
    found = ordered(wh, among(field["full"]))
    assert found is not None
    ids, h29 = found
    assert len(ids) == len(field["full"]) and np.all(np.diff(h29) >= 0)
    out = tmp_path / "full.h5"
    result = cli(
        "export", "--root", wh.root, "--sql", among(field["full"]), "--out", out, "--size", "8"
    )
    assert result.exit_code == 0, result.output
    with h5py.File(out) as h5:
        assert np.array_equal(h5["object_id"][:], ids)
        k = len(ids) // 2  # a row's pixels are its object's, in every plane
        for plane in ("image", "variance", "mask"):
            for band in range(len(BANDS)):
                assert np.array_equal(h5[plane][k, band], noise(int(ids[k]), band, plane, S))


@pytest.mark.parametrize(
    "case",
    ["partial bands", "no cutout", "duplicated", "invalid", "over the limit", "no object_id"],
)
def test_no_order_unless_every_row_has_every_band_once(field, case):
    wh, full = field["wh"], field["full"]
    sql, limit = among(full), 10**6
    if case == "partial bands":
        sql = among(full + field["partial"][:1])
    elif case == "no cutout":
        sql = among(full + field["none"][:1])
    elif case == "duplicated":
        sql = f"{among(full)} UNION ALL {among(full[:1])}"
    elif case == "invalid":
        sql = "SELECT * FROM no_such_table"
    elif case == "over the limit":
        limit = len(full) - 1
    else:
        sql = "SELECT ra, dec FROM hsc_forced"
    assert ordered(wh, sql, limit) is None


def test_an_error_found_after_the_copy_began_is_reported_and_nothing_left(tmp_path, cli):
    """Cutouts without variance and mask planes, both asked for: the ordering query finds
    every band (the copy starts), the plan's checks then refuse the export."""
    wh = build_warehouse(tmp_path / "w", n=120, cutout_rows=40)
    ids = wh.query("SELECT object_id FROM hsc_forced").column("object_id").to_pylist()
    images = {b: np.stack([noise(i, k, "image") for i in ids]) for k, b in enumerate(BANDS)}
    ingest_arrays(wh, ids, images, simulated=True, source="seeded noise test arrays")
    assert ordered(wh, among(ids)) is not None
    out = tmp_path / "out" / "x.h5"
    out.parent.mkdir()
    result = cli("export", "--root", wh.root, "--sql", among(ids), "--out", out)
    assert result.exit_code != 0
    assert "have no VARIANCE plane" in result.output and "--no-variance" in result.output
    assert "Traceback" not in result.output
    assert list(out.parent.iterdir()) == []  # no file, no temporary folder
    result = cli("export", "--root", wh.root, "--sql", among(ids), "--out", out, "--no-mask",
                 "--no-variance", "--size", "8")  # fmt: skip
    assert result.exit_code == 0, result.output
    with h5py.File(out) as h5:
        assert np.array_equal(h5["image"][7, 2], noise(int(h5["object_id"][7]), 2, "image"))


def test_objects_without_any_cutout_are_said_to_have_no_images(field, cli, tmp_path: Path):
    out = tmp_path / "none.h5"
    args = ("export", "--root", field["wh"].root, "--sql", among(field["none"]), "--out", out)
    result = cli(*args, "--allow-missing-bands")
    assert result.exit_code == 0, result.output
    assert "none images" not in result.output
    assert "no images (none of the objects has a cutout, so every image is NaN" in result.output
    assert "gwh cutouts ingest" in result.output
    with h5py.File(out) as h5:
        assert h5.attrs["data"] == "none" and np.isnan(h5["image"][:]).all()
