"""``gwh cutouts request|ingest|show`` and ``gwh export`` from the command line, end to end."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from tests.warehouse.cutouts.test_cutouts import (
    build_warehouse,
    copy_warehouse,
    make_batch_tar,
    objects,
    pixel_value,
    write_coded_fits,
)
from warehouse.images.fits import write_cutout_fits


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return build_warehouse(tmp_path_factory.mktemp("cli-base"), n=120)


@pytest.fixture
def wh(catalog, tmp_path):
    return copy_warehouse(catalog, tmp_path / "wh")


@pytest.mark.parametrize(
    "command", [["cutouts", "request"], ["cutouts", "ingest"], ["cutouts", "show"], ["export"]]
)
def test_every_command_has_help(cli, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output
    assert len(result.output.split("Options")[0]) > 60  # a description, not just the usage


def test_request_ingest_show_export_end_to_end(cli, wh, tmp_path):
    root = str(wh.root)
    req = tmp_path / "requests"
    result = cli("cutouts", "request", "--bands", "grizy", "--size", "20arcsec", "--out", req,
                 "--root", root)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "5 list(s)" in result.output and (req / "cutouts-g-0000.json").exists()
    lists = sorted(req.glob("cutouts-*-0000.txt"))
    n = 12
    tars = [make_batch_tar([p], set(range(n))) for p in lists]  # the service's answers

    result = cli("cutouts", "ingest", *tars, "--root", root)
    assert result.exit_code == 0, result.output
    assert f"ingested {5 * n} band image(s) of {n} object(s)" in result.output

    oid = objects(wh, limit=1)[0][0]
    png = tmp_path / "p.png"
    result = cli("cutouts", "show", oid, "--png", png, "--root", root)
    assert result.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"

    out = tmp_path / "train.h5"
    with_images = "SELECT * FROM ml_objects WHERE object_id IN (SELECT object_id FROM cutouts)"
    result = cli("export", "--split", "train", "--sql", with_images, "--out", out, "--size", "64",
                 "--root", root)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "galaxies x 5 bands (g,r,i,z,y) x 64x64 px, simulated images" in result.output
    with h5py.File(out) as h5:
        assert h5["image"].shape[1:] == (5, 64, 64)
        for i in (0, h5["image"].shape[0] - 1):
            oid = int(h5["object_id"][i])
            assert h5["image"][i, :, 32, 32].tolist() == [pixel_value(oid, k) for k in range(5)]

    again = cli("export", "--split", "train", "--out", out, "--root", root)
    assert again.exit_code == 1 and "already exists. Use --overwrite" in again.stderr

    result = cli("export", "--all-splits", "--out-dir", tmp_path / "ds", "--size", "16",
                 "--allow-missing-bands", "--no-mask", "--no-variance", "--compression", "lzf",
                 "--root", root)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "missing g:" in result.output
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == [
        "test.h5",
        "train.h5",
        "validation.h5",
    ]


def test_ingest_reports_unmatched_files_and_exits_1_after_ingesting_the_rest(cli, wh, tmp_path):
    good = write_coded_fits(tmp_path, objects(wh, limit=2), bands="g")
    stray = write_cutout_fits(
        tmp_path / "stray.fits", np.zeros((8, 8)), band="g", ra=200.0, dec=-60.0, simulated=True
    )
    result = cli("cutouts", "ingest", *good, stray, "--root", wh.root)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: 1 file(s) not ingested (2 band image(s) of the others")
    assert "stray.fits: no hsc_forced object within 0.5 arcsec" in result.stderr
    assert "ingested 2 band image(s) of 2 object(s)" in result.stdout
    assert wh.current_version("cutouts").nrows == 2


@pytest.mark.parametrize("size", ["0arcsec", "-5arcsec"])
def test_request_of_a_zero_or_negative_size_writes_no_list(cli, wh, tmp_path, size):
    req = tmp_path / "req"
    result = cli("cutouts", "request", "--size", size, "--out", req, "--root", wh.root)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "cutout size must be" in result.stderr and size in result.stderr
    assert not req.exists() or not any(req.iterdir())


def test_ingest_tar_with_explicit_list(cli, wh, tmp_path):
    req = tmp_path / "req"
    assert cli("cutouts", "request", "--bands", "r", "--out", req, "--root", wh.root).exit_code == 0
    (lst,) = sorted(req.glob("*.txt"))
    tar = make_batch_tar([lst], {0, 1}, out=tmp_path / "answer.tar")
    missing = cli("cutouts", "ingest", tar, "--root", wh.root)
    assert missing.exit_code == 1 and "--list LIST" in missing.stderr
    result = cli("cutouts", "ingest", tar, "--list", lst, "--root", wh.root)
    assert result.exit_code == 0, result.output


def test_export_errors(cli, wh, tmp_path):
    root = str(wh.root)
    none = cli("export", "--split", "train", "--out", tmp_path / "x.h5", "--root", root)
    assert none.exit_code == 1 and "no cutouts have been ingested yet" in none.stderr
    write = write_coded_fits(tmp_path, objects(wh, limit=2), bands="g")
    assert cli("cutouts", "ingest", *write, "--root", root).exit_code == 0
    missing = cli("export", "--split", "train", "--out", tmp_path / "x.h5", "--root", root)
    assert missing.exit_code == 1 and "have no cutout" in missing.stderr
    assert "--allow-missing-bands" in missing.stderr and not (tmp_path / "x.h5").exists()
    bad = cli("export", "--out", tmp_path / "x.h5", "--compression", "zstd", "--root", root)
    assert bad.exit_code == 1 and "--compression must be one of lzf, gzip" in bad.stderr
    assert cli("export", "--split", "train", "--root", root).exit_code == 2  # no --out
    both = cli("export", "--out", tmp_path / "x.h5", "--view", "a", "--sql", "b", "--root", root)
    assert both.exit_code == 2
    assert cli("export", "--all-splits", "--out", tmp_path / "x.h5", "--root", root).exit_code == 2
    bands = cli("export", "--out", tmp_path / "x.h5", "--bands", "gq", "--root", root)
    assert bands.exit_code == 1 and "not a configured band" in bands.stderr
    # a NUL in a string: an 80-line h5py traceback ("VLEN strings do not support embedded NULLs")
    sql = "select object_id, chr(0) || 'a' as note from cutouts"
    nul = cli("export", "--sql", sql, "--bands", "g", "--out", tmp_path / "x.h5", "--root", root)
    assert nul.exit_code == 1 and len(nul.stderr.strip().splitlines()) == 1, nul.output
    assert "column note holds a string with a NUL character" in nul.stderr
    assert not (tmp_path / "x.h5").exists()


def test_show_unknown_object(cli, wh, tmp_path):
    result = cli("cutouts", "show", 42, "--png", tmp_path / "x.png", "--root", wh.root)
    assert result.exit_code == 1 and result.stderr.startswith("error: no cutouts")
    nowhere = tmp_path / "no" / "x.png"  # the message names --png, the option given (not --out)
    result = cli("cutouts", "show", 42, "--png", nowhere, "--root", wh.root)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: --png {nowhere}: folder {nowhere.parent} does not")
