"""The morphology table: measuring stored cutouts, resuming, loading external tables, ml_objects."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sep

from loaders.morphology import load_morphology
from warehouse.cutouts import ingest_arrays
from warehouse.errors import ComputeError, LoadError, MorphologyError
from warehouse.images.masks import DEFAULT_BAD_MASK_BITS, HSC_MASK_BITS, mask_bits_value
from warehouse.morphology import (
    FIELD_UNITS,
    MORPHOLOGY_FIELDS,
    DetectionConfig,
    measure_band,
    measure_morphology,
)
from warehouse.morphology.table import band_key, config_hash

SIZE = 48
N = 12


def galaxies(n: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """SIMULATED elliptical Gaussian galaxies with unit noise, (n, size, size) float32."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    out = np.empty((n, size, size), np.float32)
    for k in range(n):
        sx, sy = rng.uniform(2.0, 3.5), rng.uniform(1.2, 2.0)
        g = np.exp(-((xx - c) ** 2 / (2 * sx**2) + (yy - c) ** 2 / (2 * sy**2)))
        out[k] = rng.uniform(30, 80) * g + rng.normal(0, 1, (size, size))
    return out


@pytest.fixture
def imaged(loaded):
    """The loaded field with g, r, i cutouts (SIMULATED) for N ml_objects; z and y missing.

    Object 0's g band is entirely BAD in its mask, object 1's r band has NaN pixels and a
    SAT pixel on the galaxy, object 2's i band has a DETECTED plane (not a bad bit).
    """
    ids = (
        loaded.query(f"SELECT object_id FROM ml_objects ORDER BY object_id LIMIT {N}")
        .column(0)
        .to_pylist()
    )
    images = {b: galaxies(N, seed=k) for k, b in enumerate("gri")}
    variance = {b: np.ones((N, SIZE, SIZE), np.float32) for b in "gri"}
    mask = {b: np.zeros((N, SIZE, SIZE), np.int32) for b in "gri"}
    mask["g"][0] = 1 << HSC_MASK_BITS["BAD"]
    images["r"][1, 5:9, 5:9] = np.nan
    mask["r"][1, 23, 23] = 1 << HSC_MASK_BITS["SAT"]
    mask["i"][2, 20:28, 20:28] = 1 << HSC_MASK_BITS["DETECTED"]
    ingest_arrays(loaded, ids, images, simulated=True, source="test", variance=variance, mask=mask)
    return loaded, ids, images, variance, mask


def test_ml_objects_works_before_any_morphology(loaded):
    before = loaded.query("SELECT count(*) AS n FROM ml_objects").column("n")[0].as_py()
    assert before > 100
    cols = loaded.query("SELECT * FROM ml_objects LIMIT 0").column_names
    assert "morphology_source" in cols and "morph_config_hash" in cols
    n = loaded.query("SELECT count(morphology_source) AS n FROM ml_objects").column(0)[0].as_py()
    assert n == 0
    info = {v.name: v for v in loaded.views()}
    assert info["morphology"].rows == 0 and info["morphology"].reason is None
    assert info["ml_objects"].reason is None
    assert all(n == 0 for _name, n, _e in loaded.check())


def test_no_cutouts_is_a_clear_error(loaded):
    with pytest.raises(MorphologyError, match="no cutouts have been ingested yet"):
        measure_morphology(loaded, workers=1)


def test_unknown_band_is_refused(imaged):
    wh = imaged[0]
    with pytest.raises(MorphologyError, match="bands q: choose among the configured bands grizy"):
        measure_morphology(wh, bands="gq", workers=1)
    for typo in ("g,,r", "g,r,"):  # an empty name was dropped: g,,r measured g and r only
        with pytest.raises(MorphologyError, match="has an empty band name between commas"):
            measure_morphology(wh, bands=typo, workers=1)
    for names in (["g", "", "r"], ["g", None]):  # a list's empty name was dropped too
        with pytest.raises(MorphologyError, match="has an empty or non-text band name"):
            measure_morphology(wh, bands=names, workers=1)


def test_measured_values_are_measure_band_on_the_stored_pixels(imaged):
    wh, ids, images, variance, mask = imaged
    report = measure_morphology(wh, workers=1, chunk_size=5)
    assert (report.objects, report.measured, report.commits) == (N, N, 3)
    rows = {
        r["object_id"]: r
        for r in wh.query("SELECT * FROM morphology").to_pylist()  # every column
    }
    assert set(rows) == set(ids)
    bad_bits = mask_bits_value(DEFAULT_BAD_MASK_BITS)
    for k, oid in enumerate(ids):
        row = rows[oid]
        assert row["morphology_source"] == "measured"
        for b in "gri":
            expected = measure_band(
                images[b][k],
                variance=variance[b][k],
                mask=(mask[b][k] & bad_bits) != 0,
                zeropoint=27.0,
                pixel_scale=0.168,
            )
            for name in MORPHOLOGY_FIELDS:
                want, got = expected[name], row[f"{b}_{name}"]
                assert got == (want if want is None else pytest.approx(want, rel=1e-12))
            assert row[f"{b}_morph_reason"] == expected["reason"]
        for b in "zy":  # no cutout: NULL values and a reason, nothing invented
            assert all(row[f"{b}_{name}"] is None for name in MORPHOLOGY_FIELDS)
            assert row[f"{b}_morph_reason"] == f"no {b} cutout"
    assert rows[ids[0]]["g_ellipticity"] is None
    assert "no valid pixels" in rows[ids[0]]["g_morph_reason"]
    assert rows[ids[1]]["r_ellipticity"] is not None  # NaN and SAT pixels left out, not fatal
    assert rows[ids[2]]["i_morph_reason"] is None  # DETECTED is not a bad bit
    assert all(r["i_ellipticity"] is not None for r in rows.values())
    assert "i_morph_key" not in wh.query("SELECT * FROM morphology LIMIT 0").column_names


def test_units_are_in_the_parquet_field_metadata(imaged):
    wh = imaged[0]
    measure_morphology(wh, workers=1, bands="i")
    cv = wh.current_version("morphology")
    schema = pq.read_schema(cv.files()[0])
    for name in MORPHOLOGY_FIELDS:
        f = schema.field(f"i_{name}")
        assert f.metadata[b"unit"].decode() == FIELD_UNITS[name]
        assert f.metadata[b"description"]
    assert schema.field("i_isophotal_area").type == pa.int32()
    assert schema.field("i_half_light_radius").type == pa.float64()


def test_a_rerun_skips_what_is_up_to_date(imaged):
    wh, ids, images, variance, mask = imaged
    measure_morphology(wh, workers=1)
    again = measure_morphology(wh, workers=1)
    assert (again.measured, again.up_to_date, again.commits) == (0, N, 0)
    # another configuration: every object again
    other = measure_morphology(wh, workers=1, config=DetectionConfig(detect_thresh=2.5))
    assert other.measured == N and other.config_hash != again.config_hash
    # a band ingested again: only that object
    ingest_arrays(wh, ids[:1], {"r": images["r"][:1] * 2}, simulated=True, source="again")
    one = measure_morphology(wh, workers=1, config=DetectionConfig(detect_thresh=2.5))
    assert (one.measured, one.up_to_date) == (1, N - 1)
    # a malformed --dask is an error even when nothing is left to measure (not ignored)
    with pytest.raises(ComputeError, match="local:N with N >= 1"):
        measure_morphology(wh, workers=1, config=DetectionConfig(detect_thresh=2.5), dask="local:0")


def test_a_killed_run_keeps_finished_chunks_and_resumes(imaged, monkeypatch):
    import warehouse.morphology.table as store

    wh = imaged[0]
    real = store.measure_rows
    calls = []

    def dies_on_the_second_task(rows, job):
        calls.append(len(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as Ctrl-C, or a killed process, would stop it
        return real(rows, job)

    monkeypatch.setattr(store, "measure_rows", dies_on_the_second_task)
    with pytest.raises(KeyboardInterrupt):
        measure_morphology(wh, workers=1, chunk_size=2)
    assert calls[0] == 3  # tasks of 3 objects: one chunk of 2 committed, the third was not
    committed = wh.query("SELECT count(*) FROM morphology").column(0)[0].as_py()
    assert committed == 2
    monkeypatch.setattr(store, "measure_rows", real)
    rest = measure_morphology(wh, workers=1)
    assert (rest.measured, rest.up_to_date) == (N - 2, 2)


def test_workers_give_the_same_values(imaged):
    wh = imaged[0]
    measure_morphology(wh, workers=1, bands="gr")
    one = wh.query("SELECT * FROM morphology ORDER BY object_id")
    other = measure_morphology(wh, workers=2, bands="gr", config=DetectionConfig(detect_thresh=2.8))
    assert (other.measured, other.workers) == (N, 2)
    assert not wh.query("SELECT * FROM morphology ORDER BY object_id").equals(one)
    measure_morphology(wh, workers=2, bands="gr")  # back to the default, in 2 processes
    assert wh.query("SELECT * FROM morphology ORDER BY object_id").equals(one)


def test_no_zeropoint_means_no_peak_surface_brightness(loaded):
    ids = loaded.query("SELECT object_id FROM ml_objects LIMIT 2").column(0).to_pylist()
    ingest_arrays(loaded, ids, {"i": galaxies(2)}, simulated=True, source="t", zeropoint=None)
    measure_morphology(loaded, workers=1, bands="i")
    for row in loaded.query("SELECT * FROM morphology").to_pylist():
        assert row["i_peak_surface_brightness"] is None
        assert "no zeropoint" in row["i_morph_reason"]
        assert row["i_ellipticity"] is not None


def test_a_damaged_row_gives_a_reason_not_a_crash():
    from warehouse.morphology.worker import measure_stored_object

    row = {"object_id": 7, "i_image": b"\x00" * 12, "i_height": 4, "i_width": 4}
    out = measure_stored_object(row, "i")
    assert out["i_ellipticity"] is None
    assert out["i_morph_reason"].startswith("measurement failed: ValueError")


def test_morphology_joins_ml_objects(imaged):
    wh, ids = imaged[0], imaged[1]
    n_before = wh.query("SELECT count(*) FROM ml_objects").column(0)[0].as_py()
    measure_morphology(wh, workers=1)
    rows = wh.query(
        "SELECT object_id, i_ellipticity, morphology_source FROM ml_objects "
        "WHERE morphology_source IS NOT NULL ORDER BY object_id"
    ).to_pylist()
    assert [r["object_id"] for r in rows] == sorted(ids)
    assert wh.query("SELECT count(*) FROM ml_objects").column(0)[0].as_py() == n_before
    assert all(n == 0 for _name, n, _e in wh.check())


def test_export_carries_the_morphology_columns(imaged, tmp_path):
    import h5py

    from warehouse.export import export_hdf5

    wh = imaged[0]
    measure_morphology(wh, workers=1)
    sql = "SELECT * FROM ml_objects WHERE object_id IN (SELECT object_id FROM cutouts)"
    export_hdf5(wh, tmp_path / "x.h5", sql=sql, progress=False, **_allow_missing())
    stored = {
        r["object_id"]: r["i_half_light_radius"]
        for r in wh.query("SELECT object_id, i_half_light_radius FROM morphology").to_pylist()
    }
    with h5py.File(tmp_path / "x.h5", "r") as h5:
        got = dict(zip(h5["object_id"][:].tolist(), h5["i_half_light_radius"][:], strict=True))
        assert "i_morph_reason" in h5 and "morphology_source" in h5
    assert got == pytest.approx(stored)


def _allow_missing() -> dict:
    from warehouse.export import ExportOptions

    return {"options": ExportOptions(allow_missing_bands=True)}


# --------------------------------------------------------------------------- loading


def _write_csv(path, rows, fields):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def test_load_takes_positions_from_hsc_forced_and_replaces_whole_rows(imaged, tmp_path):
    wh, ids = imaged[0], imaged[1]
    measure_morphology(wh, workers=1)
    path = _write_csv(
        tmp_path / "external.csv",
        [{"object_id": ids[0], "i_ellipticity": 0.25, "i_sersic_index": 4.0}],
        ["object_id", "i_ellipticity", "i_sersic_index"],
    )
    load_morphology(wh, [path])
    row = wh.query(f"SELECT * FROM morphology WHERE object_id = {ids[0]}").to_pylist()[0]
    assert row["morphology_source"] == "loaded:external.csv"
    assert (row["i_ellipticity"], row["i_sersic_index"]) == (0.25, 4.0)
    assert row["g_ellipticity"] is None and row["morph_config_hash"] is None  # whole row
    pos = wh.query(f"SELECT ra, dec FROM hsc_forced WHERE object_id = {ids[0]}").to_pylist()[0]
    assert (row["ra"], row["dec"]) == (pos["ra"], pos["dec"])
    # a measurement keeps the loaded row ...
    kept = measure_morphology(wh, workers=1, config=DetectionConfig(detect_thresh=2.7))
    assert (kept.loaded_kept, kept.measured) == (1, N - 1)
    assert wh.query(f"SELECT i_ellipticity FROM morphology WHERE object_id = {ids[0]}").column(0)[
        0
    ].as_py() == pytest.approx(0.25)
    # ... unless told to replace it; then the row is entirely measured
    again = measure_morphology(wh, workers=1, bands="i", replace_loaded=True)
    assert again.measured >= 1
    row = wh.query(f"SELECT * FROM morphology WHERE object_id = {ids[0]}").to_pylist()[0]
    assert row["morphology_source"] == "measured" and row["i_ellipticity"] != 0.25
    assert row["g_ellipticity"] is None and row["g_morph_reason"].startswith("not measured")
    # the same file loads once
    assert load_morphology(wh, [path]) == []


def test_load_fits_and_parquet_with_positions(make_warehouse, tmp_path):
    from astropy.table import Table

    wh = make_warehouse()
    Table(
        {
            "OBJECT_ID": np.array([1, 2], np.int64),
            "RA": [150.0, 150.1],
            "DEC": [2.0, 2.1],
            "R_HALF_LIGHT_RADIUS": [3.5, 4.5],
            "R_TOTAL_GALAXIES": np.array([2, 3], np.int32),
        }
    ).write(tmp_path / "m.fits")
    pq.write_table(
        pa.table({"object_id": [3], "ra": [10.0], "dec": [-5.0], "g_petro_rad": [7.0]}),
        tmp_path / "m.parquet",
    )
    load_morphology(wh, [tmp_path / "m.fits", tmp_path / "m.parquet"])
    rows = wh.query("SELECT * FROM morphology ORDER BY object_id").to_pylist()
    assert [r["object_id"] for r in rows] == [1, 2, 3]
    assert rows[1]["r_total_galaxies"] == 3 and rows[2]["g_petro_rad"] == 7.0
    assert rows[2]["morphology_source"] == "loaded:m.parquet"


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("i_colour", "1.0", "i_colour are not morphology columns"),
        ("q_ellipticity", "0.1", r"band\(s\) q are not configured"),
        ("i_ellipticity", "round", "is not a valid double"),
    ],
)
def test_load_refuses_bad_files(loaded, tmp_path, header, value, message):
    oid = loaded.query("SELECT min(object_id) FROM hsc_forced").column(0)[0].as_py()
    path = _write_csv(
        tmp_path / "bad.csv", [{"object_id": oid, header: value}], ["object_id", header]
    )
    with pytest.raises(LoadError, match=message):
        load_morphology(loaded, [path])


def test_load_without_positions_needs_known_objects(loaded, tmp_path):
    path = _write_csv(
        tmp_path / "m.csv",
        [{"object_id": 12345, "i_ellipticity": 0.1}],
        ["object_id", "i_ellipticity"],
    )
    with pytest.raises(
        LoadError, match=r"1 object_id\(s\) are not in hsc_forced \(e.g. \[12345\]\)"
    ):
        load_morphology(loaded, [path])


def test_a_release_without_morphology_keeps_ml_objects(loaded):
    from warehouse.release import create_release, open_release

    create_release(loaded, "v1")
    frozen = open_release(loaded.root, "v1")
    n = frozen.query("SELECT count(*) FROM ml_objects").column(0)[0].as_py()
    assert n == loaded.query("SELECT count(*) FROM ml_objects").column(0)[0].as_py()


def test_stored_keys_keep_their_values(monkeypatch):
    """config_hash and band_key are stored in every measured row (morph_config_hash,
    {b}_morph_key): a refactoring that changed them would measure every object again."""
    monkeypatch.setattr(sep, "__version__", "1.4.1")  # part of the hash: pin the one measured
    assert config_hash(DetectionConfig()) == "520b74a2cf22b71e"
    assert config_hash(DetectionConfig(detect_thresh=1.5)) == "7d8650149161153d"
    meta = {
        "source": "hsc",
        "height": 64,
        "width": 64,
        "zeropoint": 27.0,
        "pixel_scale": 0.168,
        "masked_fraction": 0.0,
        "center_offset_arcsec": 0.01,
        "simulated": False,
    }
    assert band_key("0123456789abcdef", "i", meta) == "b07e78f80e2c6d88"
    assert band_key("0123456789abcdef", "g", None) == "3da71e43ab9b898a"
