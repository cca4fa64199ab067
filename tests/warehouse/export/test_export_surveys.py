"""HDF5 export of other surveys' image tables (KiDS u,g,r,i 36x36, SDSS r 40x40, HST) and of
label columns with their mappings (KiDS SPECTYPE, Galaxy Zoo 2 morphology).

Data: the KiDS files are SIMULATED from the published description (tests.loaders.test_kids);
SDSS and HST cutouts come from the real clients against the local replay server (SDSS frames
SIMULATED, HST mosaic real); the Galaxy Zoo 2 rows are the real sample in tests/data/galaxy_zoo2,
and the HSC catalog rows and cutouts matched to them are SIMULATED (placed on GZ2 positions, so
the morphology label of an HSC object here is a simulated association)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.galaxy_zoo import GZ2_LABELS, load_galaxy_zoo
from loaders.images import decode_image
from loaders.kids import KIDS_BANDS, SPECTYPE_LABELS, load_kids_cutouts
from loaders.mast.hst import fetch_hst_cutouts
from loaders.sdss import fetch_sdss_cutouts
from tests.loaders import test_sdss
from tests.loaders.mast import test_hst
from tests.loaders.test_kids import simulated_kids_file
from tests.support import replay_server as support
from tests.support.replay_server import install_mast, install_sdss
from tests.warehouse.cutouts.test_cutouts import BANDS, ingest_coded, pixel_value
from warehouse.errors import ExportError
from warehouse.export import (
    ExportOptions,
    available_bands,
    export_hdf5,
    parse_bands,
)
from warehouse.export.columns import _Label, _label_of
from warehouse.healpix import spatial_index
from warehouse.images.fit import fit_to_size

replay_server = support.replay_server

GZ_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "galaxy_zoo2"
GZ_SAMPLE = GZ_SAMPLE / "gz2_stripe82_coadd2_sample200.csv"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bits(a: np.ndarray) -> np.ndarray:
    """float32 values as their bit patterns: equal means bit-identical (NaN and -0.0 too)."""
    return np.ascontiguousarray(a, dtype="<f4").view("<u4")


def load_hf(path: Path, cache: Path):
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset("hdf5", data_files=str(path), split="train", cache_dir=str(cache))


# --------------------------------------------------------------------------- KiDS


@pytest.fixture
def kids(make_warehouse, tmp_path):
    """kids_cutouts from three SIMULATED class files; truth: object_id -> (class, (36,36,4))."""
    files, truth = [], {}
    for k, (cls, n, layout) in enumerate(
        (("STAR", 4, "group"), ("QSO", 3, "table"), ("GALAXY", 5, "group"))
    ):
        path = tmp_path / f"simulated_{cls.lower()}.h5"
        images, ra, dec = simulated_kids_file(path, cls, n, seed=10 + k, layout=layout)
        files.append(path)
        ids = spatial_index(ra, dec)
        for i in range(n):
            truth[int(ids[i])] = (cls, images[i])
    wh = make_warehouse(cutouts_max_rows_per_partition=3)  # several partitions: streamed
    assert load_kids_cutouts(wh, files) == 12
    return wh, truth


def test_kids_file_to_export_is_bit_identical_channels_first_with_labels(kids, tmp_path):
    wh, truth = kids
    out = tmp_path / "kids.h5"
    opts = ExportOptions(size=36, images="kids_cutouts", bands=("u", "g", "r", "i"))
    result = export_hdf5(wh, out, sql="select * from kids_cutouts", options=opts, progress=False)
    assert result.rows == 12 and result.bands == KIDS_BANDS and result.data == "simulated"
    assert len(wh.current_version("kids_cutouts").partitions) > 1
    with h5py.File(out) as h5:
        image = h5["image"]
        assert image.shape == (12, 4, 36, 36) and image.dtype == np.float32
        assert "mask" not in h5 and "variance" not in h5  # KiDS cutouts carry neither
        ids = h5["object_id"][:]
        h29 = h5["_healpix_29"][:]
        assert np.all(np.diff(h29) > 0) and set(ids.tolist()) == set(truth)
        labels = h5["spectype_label"][:]
        names = h5["spectype"].asstr()[:]
        for i, oid in enumerate(ids.tolist()):  # row i describes the object of image i
            cls, cube = truth[oid]
            assert names[i] == cls and labels[i] == SPECTYPE_LABELS[cls]
            for k in range(4):  # channels-last (36,36,4) in the file, channels-first here
                assert np.array_equal(bits(image[i, k]), bits(cube[:, :, k]))
        assert set(h5["fit_action"].asstr()[:]) == {"none"}
        assert np.isnan(h5["zeropoint"][:]).all() and h5["image_simulated"][:].all()
        a = dict(h5.attrs)
        assert list(a["bands"]) == ["u", "g", "r", "i"] and a["size"] == 36
        assert a["pixel_scale"] == 0.2 and a["image_table"] == "kids_cutouts"
        assert list(a["planes"]) == ["image"] and "mask_planes" not in a
        assert json.loads(a["label_mapping/spectype_label"]) == SPECTYPE_LABELS
        assert list(a["label_columns"]) == ["spectype_label"]
        dset = h5["spectype_label"].attrs
        assert json.loads(dset["label_mapping"]) == {"GALAXY": 0, "QSO": 1, "STAR": 2}
        assert dset["label_table"] == "kids_cutouts" and dset["label_names_column"] == "spectype"
        assert "kids_cutouts" in a["image_units"]
        for name, d in h5.items():
            assert d.shape[0] == 12, name
    again = tmp_path / "again.h5"
    export_hdf5(wh, again, sql="select * from kids_cutouts", options=opts, progress=False)
    assert sha256(again) == sha256(out)  # deterministic bytes


def test_huggingface_datasets_reads_a_kids_export(kids, tmp_path):
    wh, truth = kids
    out = tmp_path / "kids.h5"
    opts = ExportOptions(size=36, images="kids_cutouts")  # default: every band of the table
    export_hdf5(wh, out, sql="select * from kids_cutouts", options=opts, progress=False)
    ds = load_hf(out, tmp_path / "hf")
    assert ds.num_rows == 12 and ds.features["image"].shape == (4, 36, 36)
    assert ds.features["spectype_label"].dtype == "int16"
    for i in (0, 5, 11):
        row = ds[i]
        cls, cube = truth[row["object_id"]]
        assert row["spectype"] == cls and row["spectype_label"] == SPECTYPE_LABELS[cls]
        image = np.asarray(row["image"], np.float32)
        assert np.array_equal(bits(image), bits(np.moveaxis(cube, -1, 0)))


def test_kids_bands_in_the_order_given_cropped(kids, tmp_path, cli):
    wh, truth = kids
    out = tmp_path / "ri.h5"
    result = cli("export", "--images", "kids_cutouts", "--bands", "ri", "--size", "32",
                 "--sql", "select object_id, spectype_label from kids_cutouts where spectype='QSO'",
                 "--out", out, "--root", wh.root)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 galaxies x 2 bands (r,i) x 32x32 px" in result.output
    with h5py.File(out) as h5:
        assert h5["image"].shape == (3, 2, 32, 32)
        assert list(h5.attrs["bands"]) == ["r", "i"]
        for i, oid in enumerate(h5["object_id"][:].tolist()):
            _, cube = truth[oid]
            for k, band in enumerate(("r", "i")):
                plane = cube[:, :, KIDS_BANDS.index(band)]
                expected = fit_to_size(plane, 32).array
                assert np.array_equal(bits(h5["image"][i, k]), bits(expected))
        assert set(h5["fit_action"].asstr()[:]) == {"cropped"}
        assert set(h5["spectype_label"][:].tolist()) == {SPECTYPE_LABELS["QSO"]}


def test_cli_kids_export_as_documented(kids, tmp_path, cli):
    wh, _ = kids
    out = tmp_path / "kids.h5"
    result = cli("export", "--images", "kids_cutouts", "--bands", "ugri", "--size", "36",
                 "--sql", "select * from kids_cutouts", "--out", out,
                 "--root", wh.root)  # fmt: skip
    assert result.exit_code == 0, result.output
    with h5py.File(out) as h5:
        assert h5["image"].shape == (12, 4, 36, 36)
    bad = cli("export", "--images", "kids_cutouts", "--bands", "ugriz", "--size", "36",
              "--sql", "select * from kids_cutouts", "--out", tmp_path / "x.h5",
              "--root", wh.root)  # fmt: skip
    assert bad.exit_code != 0
    assert "z is not a band of kids_cutouts; it holds u, g, r, i" in bad.output
    assert not (tmp_path / "x.h5").exists()


def test_a_column_outside_its_label_mapping_stops_the_export(kids, tmp_path):
    wh, _ = kids
    out = tmp_path / "bad.h5"
    sql = "select * replace (spectype_label + 5 AS spectype_label) from kids_cutouts"
    opts = ExportOptions(size=36, images="kids_cutouts")
    with pytest.raises(ExportError, match="spectype_label holds .* not in the label mapping"):
        export_hdf5(wh, out, sql=sql, options=opts, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".bad.h5*"))  # nothing half-written


def test_image_table_errors(kids, make_warehouse, tmp_path):
    wh, _ = kids
    out = tmp_path / "x.h5"
    sql = "select * from kids_cutouts"
    with pytest.raises(ExportError, match="'galaxy_zoo' is a table without images"):
        export_hdf5(wh, out, sql=sql, options=ExportOptions(images="galaxy_zoo"), progress=False)
    with pytest.raises(ExportError, match="'nope' is not a table; choose an image table: "):
        export_hdf5(wh, out, sql=sql, options=ExportOptions(images="nope"), progress=False)
    with pytest.raises(ExportError, match="--images must name an image table"):
        ExportOptions(images="kids; drop table x")
    with pytest.raises(ExportError, match=r"band\(s\) y are not in kids_cutouts"):
        export_hdf5(wh, out, sql=sql, options=ExportOptions(images="kids_cutouts", bands=("y",)))
    empty = make_warehouse("empty")
    with pytest.raises(ExportError, match="kids_cutouts has not been loaded yet.*gwh load kids"):
        export_hdf5(empty, out, sql=sql, options=ExportOptions(images="kids_cutouts"))
    assert available_bands(wh, "kids_cutouts") == ("u", "g", "r", "i")
    assert available_bands(wh) == tuple(wh.config.bands)  # cutouts: the configured bands


def test_a_label_name_with_two_mappings_is_not_guessed():
    a = _Label("kids_cutouts", {"GALAXY": 0, "QSO": 1, "STAR": 2}, "spectype")
    b = _Label("other", {"STAR": 0, "GALAXY": 1}, None)
    assert _label_of("spectype_label", [a, a], "other") is a
    with pytest.raises(ExportError, match="different mappings in kids_cutouts .* AS spectype_l"):
        _label_of("spectype_label", [a, b], "kids_cutouts")


def test_band_names_of_any_survey_parse():
    assert parse_bands("ugri", KIDS_BANDS, "kids_cutouts") == ("u", "g", "r", "i")
    assert parse_bands("f160w", ("f160w", "f814w"), "hst_cutouts") == ("f160w",)
    assert parse_bands("f814wf160w", ("f160w", "f814w"), "hst_cutouts") == ("f814w", "f160w")
    assert parse_bands("f814w, f160w", ("f160w", "f814w"), "hst_cutouts") == ("f814w", "f160w")
    with pytest.raises(ExportError, match="F160W is not a band of hst_cutouts; it holds f160w"):
        parse_bands("F160W", ("f160w",), "hst_cutouts")
    with pytest.raises(ExportError, match="q is not a configured band"):
        parse_bands("gq", BANDS)
    for typo in ("g,,r", "g,r,", ",g"):  # an empty name was dropped without a word
        with pytest.raises(ExportError, match="has an empty band name between commas"):
            parse_bands(typo, BANDS)


# --------------------------------------------------------------------------- SDSS and HST


@pytest.fixture
def sdss(replay_server, make_warehouse, tmp_path, monkeypatch):
    for var in ("GWH_SDSS_URL", "GWH_SDSS_SAS_URL"):
        monkeypatch.delenv(var, raising=False)
    server = replay_server()
    install_sdss(server)
    monkeypatch.setenv("GWH_SDSS_URL", server.url)
    wh = make_warehouse()
    labels = test_sdss.simulated_labels(tmp_path / "simulated_gz.csv", test_sdss.OBJECTS, 1)
    load_galaxy_zoo(wh, [labels])
    result = fetch_sdss_cutouts(wh, band="r", pixels=40, sleep=test_sdss.Sleeps())
    assert result.cutouts == 2
    return wh


def test_sdss_export_one_band_40px(sdss, tmp_path):
    wh = sdss
    out = tmp_path / "sdss.h5"
    sql = "select * from sdss_cutouts"
    opts = ExportOptions(size=40, images="sdss_cutouts", bands=("r",))
    result = export_hdf5(wh, out, sql=sql, options=opts, progress=False)
    table = pq.read_table(wh.current_version("sdss_cutouts").files())
    stored = {r["object_id"]: r for r in table.to_pylist()}
    gz = {r["objid"]: r for r in wh.query("select objid, gz2_label from galaxy_zoo").to_pylist()}
    assert result.rows == 2
    with h5py.File(out) as h5:
        assert h5["image"].shape == (2, 1, 40, 40) and "variance" not in h5
        for i, oid in enumerate(h5["object_id"][:].tolist()):
            expected = decode_image(stored[oid]["r_image"], (40, 40))
            assert np.array_equal(bits(h5["image"][i, 0]), bits(expected))
            assert h5["gz2_label"][i] == gz[oid]["gz2_label"]
        assert h5.attrs["pixel_scale"] == 0.396 and list(h5.attrs["bands"]) == ["r"]
        assert np.all(h5["zeropoint"][:] == 22.5)
        assert json.loads(h5.attrs["label_mapping/gz2_label"]) == GZ2_LABELS
        assert json.loads(h5["gz2_label"].attrs["label_mapping"]) == GZ2_LABELS
        assert h5["gz2_label"].attrs["label_table"] == "sdss_cutouts"  # the image table's copy
    ds = load_hf(out, tmp_path / "hf")
    assert ds.num_rows == 2 and ds.features["image"].shape == (1, 40, 40)
    with h5py.File(out) as h5:
        for i in range(2):
            assert ds[i]["object_id"] == int(h5["object_id"][i])
            assert np.array_equal(np.asarray(ds[i]["image"], np.float32), h5["image"][i])


def test_sdss_positions_come_from_the_image_table_or_the_query(sdss, tmp_path):
    wh = sdss
    opts = ExportOptions(size=40, images="sdss_cutouts", allow_missing_bands=True)
    # no _healpix_29 in the query: rows are placed and ordered by the image table
    joined = (
        "select g.objid as object_id, g.gz2_label, g.gz2_task1_class from galaxy_zoo g "
        "join sdss_cutouts s on s.object_id = g.objid"
    )
    export_hdf5(wh, tmp_path / "j.h5", sql=joined, options=opts, progress=False)
    order = wh.query("select object_id from sdss_cutouts order by _healpix_29, object_id")
    with h5py.File(tmp_path / "j.h5") as h5:
        assert h5["object_id"][:].tolist() == order.column(0).to_pylist()
        assert "_healpix_29" not in h5
    # every galaxy: the one without an SDSS cutout is placed by the query's _healpix_29
    every = "select objid as object_id, _healpix_29, gz2_label from galaxy_zoo"
    export_hdf5(wh, tmp_path / "all.h5", sql=every, options=opts, progress=False)
    with h5py.File(tmp_path / "all.h5") as h5:
        assert h5["image"].shape == (3, 1, 40, 40)
        missing = h5["missing_r"][:]
        assert missing.sum() == 1 and np.isnan(h5["image"][np.flatnonzero(missing)[0]]).all()
        assert np.all(np.diff(h5["_healpix_29"][:]) > 0)
    nopos = "select objid as object_id, gz2_label from galaxy_zoo"
    with pytest.raises(ExportError, match="1 object.* not in sdss_cutouts and the query gives"):
        export_hdf5(wh, tmp_path / "n.h5", sql=nopos, options=opts, progress=False)


def test_hst_export_with_a_filter_band_name(
    replay_server, make_warehouse, tmp_path, cli, monkeypatch
):
    server = replay_server()
    install_mast(server)
    monkeypatch.setenv("GWH_MAST_URL", server.url)
    wh = make_warehouse()
    objects = test_hst.OBJECTS
    load_galaxy_zoo(wh, [test_hst.simulated_labels(tmp_path / "simulated_gz.csv", objects)])
    fetch_hst_cutouts(wh, filter="F814W", pixels=40, sleep=test_hst.Sleeps())
    out = tmp_path / "hst.h5"
    result = cli("export", "--images", "hst_cutouts", "--bands", "f814w", "--size", "40",
                 "--sql", "select object_id, gz2_label from hst_cutouts", "--out", out,
                 "--root", wh.root)  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = pq.read_table(wh.current_version("hst_cutouts").files()).to_pylist()
    by_id = {r["object_id"]: decode_image(r["f814w_image"], (40, 40)) for r in stored}
    with h5py.File(out) as h5:
        assert h5["image"].shape == (2, 1, 40, 40) and h5.attrs["pixel_scale"] == 0.03
        assert list(h5.attrs["bands"]) == ["f814w"] and h5.attrs["data"] == "real"
        for i, oid in enumerate(h5["object_id"][:].tolist()):
            assert np.array_equal(bits(h5["image"][i, 0]), bits(by_id[oid]))


# --------------------------------------------------------------------------- Galaxy Zoo + HSC


def test_hsc_cutouts_with_galaxy_zoo_morphology_labels(make_warehouse, tmp_path):
    """SIMULATED HSC objects on the positions of 30 real GZ2 galaxies, with coded cutouts; the
    export joins galaxy_zoo for the morphology label."""
    with open(GZ_SAMPLE, newline="") as fh:
        gz_rows = list(csv.DictReader(fh))[:30]
    ids = [9_000_000 + 7 * k for k in range(len(gz_rows))]
    forced = tmp_path / "simulated_forced.parquet"
    pq.write_table(
        pa.table(
            {
                "object_id": pa.array(ids, pa.int64()),
                "ra": pa.array([float(r["ra"]) for r in gz_rows]),
                "dec": pa.array([float(r["dec"]) for r in gz_rows]),
                "i_cmodel_mag": pa.array([20.0] * len(ids), pa.float32()),
            }
        ),
        forced,
    )
    wh = make_warehouse(cutouts_max_rows_per_partition=8)
    wh.load(registry.get("hsc-forced"), [forced])
    summary = load_galaxy_zoo(wh, [GZ_SAMPLE])
    assert summary is not None and summary.matched == 30
    with_cutouts = ids[:24]  # 6 matched objects have no cutout: not exported below
    ingest_coded(wh, with_cutouts)
    sql = (
        "SELECT f.object_id, f._healpix_29, g.objid AS gz2_objid, g.gz2_task1_class, g.gz2_label "
        "FROM hsc_forced f JOIN galaxy_zoo g ON g.hsc_object_id = f.object_id "
        "WHERE f.object_id IN (SELECT object_id FROM cutouts)"
    )
    out = tmp_path / "gz.h5"
    result = export_hdf5(wh, out, sql=sql, options=ExportOptions(size=16), progress=False)
    assert result.rows == 24
    hsc_id_of = {int(r["objid"]): oid for r, oid in zip(gz_rows, ids, strict=True)}
    labels = wh.query("SELECT objid, gz2_label FROM galaxy_zoo").to_pylist()
    label_of = {r["objid"]: r["gz2_label"] for r in labels}
    with h5py.File(out) as h5:
        assert h5["image"].shape == (24, 5, 16, 16)
        ids_out = h5["object_id"][:].tolist()
        assert set(ids_out) == set(with_cutouts)
        for i, oid in enumerate(ids_out):
            gz_id = int(h5["gz2_objid"][i])
            assert hsc_id_of[gz_id] == oid  # the GZ2 galaxy placed on this HSC object
            assert h5["gz2_label"][i] == label_of[gz_id]
            assert h5["image"][i, :, 8, 8].tolist() == [pixel_value(oid, b) for b in range(5)]
        classes = h5["gz2_task1_class"].asstr()[:]
        inverse = {v: k for k, v in GZ2_LABELS.items()}
        assert [inverse[v] for v in h5["gz2_label"][:].tolist()] == list(classes)
        assert json.loads(h5.attrs["label_mapping/gz2_label"]) == GZ2_LABELS
        assert h5["gz2_label"].attrs["label_table"] == "galaxy_zoo"
        assert h5["gz2_label"].attrs["label_names_column"] == "gz2_task1_class"
        assert h5.attrs["image_table"] == "cutouts" and h5.attrs["pixel_scale"] == 0.168
