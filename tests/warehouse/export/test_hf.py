"""``--format hf``: a folder ``datasets.load_dataset`` opens as train/validation/test, with the
HDF5 export's pixels and columns, NULLs kept, 64-bit ids exact, a card, and streaming."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask the Hub

import datasets  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from tests.warehouse.cutouts.test_cutouts import build_warehouse, ingest_coded, objects  # noqa: E402
from warehouse.config import SPLIT_NAMES  # noqa: E402
from warehouse.errors import ExportError  # noqa: E402
from warehouse.export import ExportOptions, export_all_splits, export_hf  # noqa: E402

# a nullable column, a 64-bit id beyond 2**53 (exact only as int64), a nullable one of those
SQL = (
    "SELECT *, CASE WHEN object_id % 3 = 0 THEN NULL ELSE tract END AS maybe_tract, "
    "object_id + 4611686018427387904 AS big_id, "
    "CASE WHEN object_id % 2 = 0 THEN NULL ELSE object_id + 4611686018427387905 END AS "
    "maybe_big, CASE WHEN object_id % 5 = 0 THEN NULL ELSE 'n' || object_id END AS maybe_name "
    "FROM ml_objects"
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("hf")
    wh = build_warehouse(base / "w", n=150)
    ingest_coded(wh, [r[0] for r in objects(wh)])
    opts = ExportOptions(size=12)
    h5 = export_all_splits(wh, base / "h5", sql=SQL, options=opts, progress=False)
    hf = export_hf(wh, base / "galaxies", sql=SQL, options=opts, progress=False)
    return wh, {r.split: r.path for r in h5}, hf, base


def test_load_dataset_gives_the_hdf5_pixels_and_columns(exported):
    wh, h5paths, hf, base = exported
    d = datasets.load_dataset(str(hf.path), cache_dir=str(base / "cache"))
    assert isinstance(d, datasets.DatasetDict) and set(d) == set(SPLIT_NAMES)
    assert d["train"].features["image"] == datasets.Array3D(shape=(5, 12, 12), dtype="float32")
    for split in SPLIT_NAMES:
        ds = d[split].with_format("numpy")[:]  # every column as one array
        with h5py.File(h5paths[split]) as h5:
            n = h5["object_id"].shape[0]
            assert len(ds["object_id"]) == n == hf.rows[split]
            assert np.array_equal(ds["image"], h5["image"][:])  # the same float32 pixels
            assert np.array_equal(ds["mask"], h5["mask"][:])
            assert ds["image"].dtype == np.float32
            for name in ("object_id", "_healpix_29", "big_id"):
                assert ds[name].dtype == np.int64
                assert ds[name].tolist() == h5[name][:].tolist()
            # the numpy formatter of datasets gives float32; the stored column is float64
            table = d[split].data
            assert table.schema.field("specz_redshift").type == "double"
            assert np.array_equal(table["specz_redshift"].to_numpy(), h5["specz_redshift"][:])
            assert table["split"].to_pylist() == [split] * n
            assert table["fit_action"].to_pylist() == h5["fit_action"].asstr()[:].tolist()
            assert table["zeropoint"].to_pylist() == h5["zeropoint"][:].tolist()
    # NULLs are NULLs, with the values around them exact (beyond 2**53 too)
    rows = list(d["test"])
    expected = wh.query(
        f"SELECT object_id, maybe_tract, maybe_big, maybe_name FROM ({SQL}) q WHERE split = 'test'"
    ).to_pylist()
    by_id = {r["object_id"]: r for r in expected}
    assert any(r["maybe_big"] is None for r in rows) and any(r["maybe_tract"] is None for r in rows)
    for r in rows:
        e = by_id[r["object_id"]]
        assert (r["maybe_tract"], r["maybe_big"], r["maybe_name"]) == (
            e["maybe_tract"],
            e["maybe_big"],
            e["maybe_name"],
        )
    assert d["test"].features["maybe_big"] == datasets.Value("int64")


def test_each_column_carries_the_unit_and_description_of_the_hdf5_file(exported):
    """The hf shards had no units anywhere; the HDF5 file of the same export has them."""
    _, h5paths, hf, _ = exported
    schema = pq.read_schema(hf.files[0])
    with h5py.File(h5paths["train"]) as h5:
        for name in ("ra", "g_cmodel_mag", "g_cmodel_flux", "d_pos", "specz_match_distance_arcsec"):
            meta = schema.field(name).metadata or {}
            assert meta[b"unit"].decode() == h5[name].attrs["unit"], name
            assert meta[b"description"].decode() == h5[name].attrs["description"], name
    assert schema.field("d_pos").metadata[b"unit"] == b"arcsec"  # stated in its description
    assert schema.field("specz_mag_i").metadata[b"unit"] == b"mag"
    assert schema.field("specz_match_distance_arcsec").metadata[b"unit"] == b"arcsec"
    assert schema.field("zeropoint").metadata[b"unit"] == b"mag"


def test_streaming_gives_the_same_rows(exported):
    _, h5paths, hf, _ = exported
    stream = datasets.load_dataset(str(hf.path), streaming=True)
    first = next(iter(stream["validation"]))
    with h5py.File(h5paths["validation"]) as h5:
        assert first["object_id"] == int(h5["object_id"][0])
        assert np.array_equal(np.asarray(first["image"], np.float32), h5["image"][0])
    assert sum(1 for _ in stream["test"]) == hf.rows["test"]


def test_small_row_groups_and_a_card(exported):
    _, _, hf, _ = exported
    for f in hf.files:
        meta = pq.ParquetFile(f).metadata
        assert max(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)) < 2**26
    card = (hf.path / "README.md").read_text()
    yaml = card.split("---")[1]
    for needle in (
        "config_name: default",
        "path: data/train-*.parquet",
        "array3_d:",
        "shape: [5, 12, 12]",
        "num_examples:",
        "license: other",
        "Aihara H. et al. 2019",
    ):
        assert needle in yaml, needle
    text = card.split("---", 2)[2]
    for needle in ("deduplicated", "salt `gwh-v1`", "0.7 / 0.15 / 0.15", "manifest SHA-256"):
        assert needle in text, needle
    assert "SIMULATED" in text  # the coded test images are simulated
    # and so is the catalog: its input files say so, and the card names them
    assert "- Simulated catalog: SIMULATED rows were loaded from hsc_forced: simulated_" in text
    with h5py.File(next(iter(exported[1].values()))) as h5:
        marked = h5.attrs["catalog_simulated"].tolist()
    assert any(str(m).startswith("hsc_forced: simulated_") for m in marked), marked


def test_an_existing_folder_needs_overwrite_and_stays_whole(exported, tmp_path):
    wh, _, hf, _ = exported
    with pytest.raises(ExportError, match="already exists. Use --overwrite"):
        export_hf(wh, hf.path, sql=SQL, options=ExportOptions(size=12), progress=False)
    assert len(list((hf.path / "data").iterdir())) == len(hf.files)
    with pytest.raises(ExportError):  # a bad query: nothing appears
        export_hf(wh, tmp_path / "bad", sql="SELECT 1 AS x", progress=False)
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_folder_another_export_fills_meanwhile_is_kept(exported, tmp_path, monkeypatch):
    """Two exports to one --out-dir at once both pass the up-front check; the one that
    finishes second must not replace the first's folder (only --overwrite does)."""
    from warehouse.export import hf as hf_module

    wh, _, _, _ = exported
    out = tmp_path / "g"
    swap = hf_module._swap_into_place

    def other_export_first(folder, dest, tmp, overwrite):  # type: ignore[no-untyped-def]
        dest.mkdir()
        (dest / "README.md").write_text("the other export's")
        return swap(folder, dest, tmp, overwrite)

    monkeypatch.setattr(hf_module, "_swap_into_place", other_export_first)
    opts = ExportOptions(size=12)
    with pytest.raises(ExportError, match="written by another export while this one ran"):
        export_hf(wh, out, sql=SQL, options=opts, progress=False)
    assert [p.name for p in out.iterdir()] == ["README.md"]
    assert [p.name for p in tmp_path.iterdir()] == ["g"]  # no temporary left
    (out / "README.md").unlink()
    out.rmdir()
    opts = ExportOptions(size=12, overwrite=True)
    export_hf(wh, out, sql=SQL, options=opts, progress=False)
    assert (out / "data").is_dir() and "the other" not in (out / "README.md").read_text()


def test_a_split_without_rows_is_an_error_before_anything_is_written(exported, tmp_path):
    wh, _, _, _ = exported
    only_train = "SELECT * FROM ml_objects WHERE split = 'train'"
    with pytest.raises(ExportError, match=r"split\(s\) validation, test have no rows"):
        export_hf(wh, tmp_path / "g", sql=only_train, options=ExportOptions(size=12))
    assert not (tmp_path / "g").exists() and list(tmp_path.iterdir()) == []
    r = export_hf(wh, tmp_path / "t", sql=only_train, splits=["train"], progress=False)
    assert set(r.rows) == {"train"} and r.rows["train"] > 0
