"""``gwh morphology measure``, ``gwh load morphology`` and ``gwh load galaxy-zoo`` with a GZ1
catalogue, through the command line."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from warehouse.cutouts import ingest_arrays


@pytest.fixture
def imaged(loaded):
    """Six ml_objects with SIMULATED i-band cutouts (Gaussian galaxies in unit noise)."""
    ids = loaded.query("SELECT object_id FROM ml_objects ORDER BY object_id LIMIT 6")
    ids = ids.column(0).to_pylist()
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:40, :40]
    g = np.exp(-((xx - 19.5) ** 2 / 8 + (yy - 19.5) ** 2 / 4))
    images = (50 * g + rng.normal(0, 1, (6, 40, 40))).astype(np.float32)
    ingest_arrays(loaded, ids, {"i": images}, simulated=True, source="cli-test")
    return loaded, ids


def test_measure_then_resume(cli, imaged):
    wh, ids = imaged
    first = cli("morphology", "measure", "--bands", "i", "--workers", "1", "--root", wh.root)
    assert first.exit_code == 0, first.output
    assert "morphology: measured 6 of 6 object(s) with cutouts (bands i" in first.output
    again = cli("morphology", "measure", "--bands", "i", "--workers", "1", "--root", wh.root)
    assert again.exit_code == 0, again.output
    assert "measured 0 of 6" in again.output and "6 up to date" in again.output
    out = cli("sql", "select count(i_ellipticity) as n from ml_objects", "--root", wh.root)
    assert out.exit_code == 0 and "\n6\n" in out.output


def test_measure_errors_are_messages(cli, loaded, imaged):
    wh = imaged[0]
    bad = cli("morphology", "measure", "--bands", "iq", "--root", wh.root)
    assert bad.exit_code == 1
    assert "bands q: choose among the configured bands grizy" in bad.output
    zero = cli("morphology", "measure", "--workers", "0", "--root", wh.root)
    assert zero.exit_code == 2
    # one process per worker: --workers 100000 forked that many on a 2-core machine
    many = cli("morphology", "measure", "--workers", "100000", "--root", wh.root)
    assert many.exit_code == 1 and len(many.output.strip().splitlines()) == 1, many.output
    assert "--workers 100,000 would start that many processes" in many.output
    assert f"give at most {max(8, 4 * (os.cpu_count() or 1))}" in many.output


def test_measure_without_cutouts(cli, make_warehouse):
    wh = make_warehouse()
    result = cli("morphology", "measure", "--root", wh.root)
    assert result.exit_code == 1
    assert "no cutouts have been ingested yet" in result.output


def test_load_morphology(cli, imaged, tmp_path):
    wh, ids = imaged
    path = tmp_path / "paper_morphology.csv"
    path.write_text(f"object_id,i_ellipticity,i_petro_rad\n{ids[0]},0.4,9.5\n")
    result = cli("load", "morphology", path, "--root", wh.root)
    assert result.exit_code == 0, result.output
    assert "morphology: 1 rows" in result.output
    out = wh.query("SELECT morphology_source, i_petro_rad FROM ml_objects WHERE i_petro_rad > 0")
    assert out.to_pylist() == [
        {"morphology_source": "loaded:paper_morphology.csv", "i_petro_rad": 9.5}
    ]
    again = cli("load", "morphology", path, "--root", wh.root)
    assert "already loaded" in again.output
    bad = tmp_path / "bad.csv"
    bad.write_text(f"object_id,colour\n{ids[0]},1\n")
    refused = cli("load", "morphology", bad, "--root", wh.root)
    assert refused.exit_code == 1 and "colour are not morphology columns" in refused.output


def test_loaded_nan_and_sentinels_are_null_with_a_reason(cli, imaged, tmp_path):
    """NaN and -99 were stored as measured values with a NULL reason (which says every field
    was measured)."""
    wh, ids = imaged
    path = tmp_path / "sentinel.csv"
    path.write_text(
        "object_id,i_ellipticity,i_petro_rad,i_morph_reason\n"
        f"{ids[0]},nan,9.5,\n{ids[1]},0.3,-99,flagged by the paper\n{ids[2]},0.2,4.0,\n"
    )
    result = cli("load", "morphology", path, "--root", wh.root)
    assert result.exit_code == 0, result.output
    rows = wh.query(
        "SELECT object_id, i_ellipticity, i_petro_rad, i_morph_reason FROM morphology "
        "ORDER BY object_id"
    ).to_pylist()
    got = {r.pop("object_id"): r for r in rows}
    assert got[ids[0]] == {
        "i_ellipticity": None,
        "i_petro_rad": 9.5,
        "i_morph_reason": "not measured in sentinel.csv (NaN or -99 in i_ellipticity)",
    }
    assert got[ids[1]] == {
        "i_ellipticity": 0.3,
        "i_petro_rad": None,
        "i_morph_reason": "flagged by the paper; not measured in sentinel.csv (NaN or -99 in "
        "i_petro_rad)",
    }
    assert got[ids[2]] == {"i_ellipticity": 0.2, "i_petro_rad": 4.0, "i_morph_reason": None}


def write_gz1_fits(path, rows):
    """A SIMULATED catalogue with the documented columns of schawinski_GZ_2010_catalogue.fits,
    in its layout: ONE row whose columns are arrays over the galaxies."""
    n = len(rows)
    rng = np.random.default_rng(0)
    columns = {
        "OBJID": ("K", np.array([r[0] for r in rows], np.int64)),
        "RA": ("D", np.array([r[1] for r in rows])),
        "DEC": ("D", np.array([r[2] for r in rows])),
        "REDSHIFT": ("E", rng.uniform(0.02, 0.05, n)),
        "GZ1_MORPHOLOGY": ("I", np.array([r[3] for r in rows], np.int16)),
        "BPT_CLASS": ("I", rng.integers(0, 5, n).astype(np.int16)),
        **{b: ("E", rng.uniform(14, 18, n)) for b in ("U", "G", "R", "I", "Z")},
        "SIGMA": ("E", rng.uniform(50, 250, n)),
        "SIGMA_ERR": ("E", rng.uniform(5, 20, n)),
        "LOG_MSTELLAR": ("E", rng.uniform(9.5, 11.5, n)),
        "L_O3": ("E", rng.uniform(38, 41, n)),
    }
    cols = [
        fits.Column(name=name, format=f"{n}{code}", array=values[None, :])
        for name, (code, values) in columns.items()
    ]
    hdu = fits.BinTableHDU.from_columns(cols)
    hdu.header["COMMENT"] = "SIMULATED test data in the layout of schawinski_GZ_2010_catalogue"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def test_load_galaxy_zoo_gz1_fits_matched_by_position(cli, loaded, tmp_path):
    objs = loaded.query("SELECT object_id, ra, dec FROM hsc_forced ORDER BY object_id LIMIT 3")
    objs = objs.to_pylist()
    rows = [
        (587722981742084144, objs[0]["ra"], objs[0]["dec"] + 0.3 / 3600, 1),  # 0.3" away
        (587722981742084145, objs[1]["ra"], objs[1]["dec"], 3),
        (587722981742084146, objs[2]["ra"], objs[2]["dec"] + 5 / 3600, 4),  # 5": no match
        (587722981742084147, 10.0, -10.0, 0),
    ]
    path = write_gz1_fits(tmp_path / "schawinski_GZ_2010_catalogue_SIMULATED.fits", rows)
    result = cli("load", "galaxy-zoo", path, "--root", loaded.root)
    assert result.exit_code == 0, result.output
    assert "2 of 4 galaxies matched to hsc_forced" in result.output
    got = loaded.query(
        "SELECT objid, gz1_morphology, bpt_class, hsc_object_id, round(hsc_match_arcsec, 2) AS d "
        "FROM galaxy_zoo ORDER BY objid"
    ).to_pylist()
    assert [r["objid"] for r in got] == [r[0] for r in rows]  # int64 exactly
    assert [r["gz1_morphology"] for r in got] == [1, 3, 4, 0]
    assert [r["hsc_object_id"] for r in got] == [
        objs[0]["object_id"],
        objs[1]["object_id"],
        None,
        None,
    ]
    assert got[0]["d"] == pytest.approx(0.3, abs=0.01)


def test_gz1_with_an_unknown_code_is_refused(cli, loaded, tmp_path):
    path = write_gz1_fits(tmp_path / "gz1.fits", [(1, 10.0, 1.0, 1), (2, 10.0, 1.1, 7)])
    result = cli("load", "galaxy-zoo", path, "--root", loaded.root)
    assert result.exit_code == 1
    assert "galaxy 2: GZ1_MORPHOLOGY = 7 is not one of 0, 1, 3, 4" in result.output


def test_morphology_commands_have_help(cli):
    for args in (("morphology", "measure"), ("load", "morphology"), ("load", "galaxy-zoo")):
        result = cli(*args, "--help")
        assert result.exit_code == 0 and len(result.output) > 200
