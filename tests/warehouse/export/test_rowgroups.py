"""The hf export writes its Parquet row groups straight from the export stream
(``RowGroupFile``): the rows must be exactly the HDF5 export's, also across several row groups,
with padded cutouts, missing bands and objects without any cutout."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.warehouse.cutouts.test_cutouts import build_warehouse, ingest_coded, objects
from warehouse.export import ExportOptions, export_hdf5, export_hf
from warehouse.export.rowgroups import RowGroupFile

SQL = "SELECT * FROM ml_objects"


def test_row_groups_hold_what_was_written_and_the_fill_elsewhere():
    f = RowGroupFile(4)
    image = f.create_dataset("image", shape=(10, 2), dtype="f4", fillvalue=np.nan)
    names = f.create_dataset("name", shape=(10,), dtype=h5py.string_dtype("utf-8"))
    image[2:7] = np.arange(10, dtype="f4").reshape(5, 2)  # spans row groups 0 and 1
    names[0:4] = np.array(["a", "b", "c", "d"], dtype=object)
    assert np.array_equal(image[0:2], np.full((2, 2), np.nan), equal_nan=True)
    assert image[2:4].tolist() == [[0, 1], [2, 3]]
    assert image[4:7].tolist() == [[4, 5], [6, 7], [8, 9]]
    assert np.isnan(image[7:8]).all()  # never written: the fill value
    assert names.asstr()[0:4].tolist() == ["a", "b", "c", "d"] and "name" in f
    with pytest.raises(IndexError):
        image[3:6]  # one row group at a time
    f.release(0)
    image[0:1] = np.zeros((1, 2), "f4")  # a reused array shows none of its old values
    assert image[0:1].tolist() == [[0, 0]] and np.isnan(image[1:4]).all()
    view = image.view(8, 10)
    view[...] = 7
    assert image[8:10].tolist() == [[7, 7], [7, 7]]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """12x12 cutouts padded to 127 (34 rows per row group with three planes): most objects
    with every band, some with g and r only, some with none."""
    base = tmp_path_factory.mktemp("rowgroups")
    wh = build_warehouse(base / "w", n=150)
    ids = [r[0] for r in objects(wh)]
    ingest_coded(wh, ids[: len(ids) * 2 // 3])
    ingest_coded(wh, ids[len(ids) * 2 // 3 : len(ids) * 5 // 6], bands=("g", "r"))
    return wh, base


def test_hf_rows_equal_the_hdf5_export_across_row_groups(mixed):
    wh, base = mixed
    opts = ExportOptions(size=127, allow_missing_bands=True)
    h5path = export_hdf5(wh, base / "train.h5", split="train", sql=SQL, options=opts).path
    hf = export_hf(wh, base / "hf", splits=["train"], sql=SQL, options=opts, progress=False)
    table = pq.read_table([str(f) for f in hf.files])
    assert pq.ParquetFile(hf.files[0]).metadata.num_row_groups >= 2
    with h5py.File(h5path) as h5:
        n = h5["object_id"].shape[0]
        assert table.num_rows == n == hf.rows["train"]
        for plane in ("image", "mask", "variance"):
            col = table.column(plane).combine_chunks().flatten().flatten().flatten()
            pixels = col.to_numpy().reshape(h5[plane].shape)
            assert np.array_equal(pixels, h5[plane][:], equal_nan=True), plane
        assert table.column("object_id").to_pylist() == h5["object_id"][:].tolist()
        assert table.column("fit_action").to_pylist() == h5["fit_action"].asstr()[:].tolist()
        for b in ("g", "z"):
            assert table.column(f"missing_{b}").to_pylist() == h5[f"missing_{b}"][:].tolist()
        assert np.array_equal(
            np.array(table.column("zeropoint").to_pylist(), float), h5["zeropoint"][:], True
        )
        assert h5["missing_z"][:].any() and not h5["missing_z"][:].all()


def test_hf_shards_of_several_row_groups_hold_the_hdf5_rows_in_order(mixed, monkeypatch):
    """Row groups are encoded two at a time and appended to their shards in order: with two
    row groups per shard, the shards read one after the other are the HDF5 file's rows."""
    import warehouse.export.hf as hf

    wh, base = mixed
    opts = ExportOptions(size=127, allow_missing_bands=True)
    row_bytes = 3 * 5 * 127 * 127 * 4
    monkeypatch.setattr(hf, "HF_ROW_GROUP_BYTES", 5 * row_bytes)  # 5 rows per row group
    monkeypatch.setattr(hf, "HF_SHARD_BYTES", 10 * row_bytes)  # 2 row groups per shard
    h5path = export_hdf5(wh, base / "shards.h5", split="train", sql=SQL, options=opts).path
    out = export_hf(wh, base / "shards", splits=["train"], sql=SQL, options=opts, progress=False)
    assert len(out.files) >= 4
    assert [pq.ParquetFile(f).metadata.num_row_groups for f in out.files[:-1]] == [2] * (
        len(out.files) - 1
    )
    table = pq.read_table([str(f) for f in out.files])
    with h5py.File(h5path) as h5:
        assert table.column("object_id").to_pylist() == h5["object_id"][:].tolist()
        pixels = table.column("image").combine_chunks().flatten().flatten().flatten()
        assert np.array_equal(pixels.to_numpy().reshape(h5["image"].shape), h5["image"][:], True)
