"""Image tables are stored in row groups of 64 objects with uncompressed float planes, and the
export reads them row group by row group (warehouse/export/blocks.py). Exports of a warehouse
written before (one snappy row group per partition) and of the same rows in today's layout are
the same bytes; pixels land on their objects through several row groups, splits (rows
scattered in the files) and partitions where some objects miss bands (read whole, as before)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.warehouse.cutouts.test_cutouts import BANDS, build_warehouse, objects
from warehouse.core import Warehouse
from warehouse.cutouts import ingest_arrays
from warehouse.export import ExportOptions, export_hdf5, export_hf
from warehouse.export.blocks import BLOCK_ROWS, block_bounds
from warehouse.export.options import PLANES
from warehouse.images.fit import fit_to_size
from warehouse.store.contracts import CUTOUTS, IMAGE_LAYOUT
from warehouse.store.layout import ParquetLayout
from warehouse.store.versions import write_metadata_files, write_partition

S = 8
BIG = 11  # the stored size of every 50th object
SQL = "SELECT * FROM ml_objects"


def noise(object_id: int, band: int, plane: str, n: int = S) -> np.ndarray:
    """An n x n plane only this object, band and plane has (so a misplaced pixel shows)."""
    rng = np.random.default_rng([int(object_id) % 2**32, band, len(plane)])
    if plane == "mask":
        return rng.integers(0, 1 << 12, (n, n), dtype=np.int32)
    return rng.standard_normal((n, n), dtype=np.float32)


def ingest_noise(wh: Warehouse, ids: list[int], bands: tuple[str, ...] = BANDS, n: int = S) -> None:
    def planes(what):
        return {b: np.stack([noise(i, BANDS.index(b), what, n) for i in ids]) for b in bands}

    ingest_arrays(
        wh,
        ids,
        planes("image"),
        variance=planes("variance"),
        mask=planes("mask"),
        simulated=True,
        source="seeded noise test arrays",
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rewrite_the_old_way(wh: Warehouse) -> None:
    """The cutouts table as warehouses before IMAGE_LAYOUT wrote it: each partition file one
    row group, every column snappy (the store's default layout), and its _metadata again."""
    cv = wh.current_version(CUTOUTS.name)
    assert cv is not None
    files = []
    for part in cv.partitions:
        path = cv.path / part.relpath
        table = pq.read_table(path)
        path.unlink()  # a hard link shared with earlier versions stays as it was
        write_partition(table, path, ParquetLayout())
        files.append((part, path))
    write_metadata_files(cv.path, cv.schema, files)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """One warehouse with cutouts partitions of up to 300 objects (several row groups each):
    8 x 8 planes, every 50th object's 11 x 11 (row groups of mixed sizes), a few objects with
    bands g and r only; and a copy rewritten the old way."""
    base = tmp_path_factory.mktemp("blocks")
    wh = build_warehouse(base / "new", n=420, cutout_rows=300)
    ids = [r[0] for r in objects(wh, view="hsc_forced")]
    ingest_noise(wh, [i for k, i in enumerate(ids[:-5]) if k % 50])
    ingest_noise(wh, ids[:-5:50], n=BIG)
    ingest_noise(wh, ids[-5:], bands=("g", "r"))
    shutil.copytree(wh.root, base / "old" / "wh", symlinks=True)
    old = Warehouse.open(base / "old" / "wh")
    rewrite_the_old_way(old)
    return wh, old, base


def test_block_bounds_cut_at_gaps_row_groups_and_the_limit():
    rows = np.array([0, 1, 2, 3, 4, 6, 7, 8])
    groups = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    assert block_bounds(rows, groups, 2) == [(0, 2), (2, 3), (3, 5), (5, 7), (7, 8)]
    assert block_bounds(rows, groups, 64) == [(0, 3), (3, 5), (5, 8)]
    assert block_bounds(rows, groups, 64, align=4) == [(0, 3), (3, 4), (4, 5), (5, 7), (7, 8)]
    assert block_bounds(np.array([], int), np.array([], int), 64) == []


def test_image_tables_store_row_groups_of_64_with_uncompressed_float_planes(stores):
    wh, _old, _base = stores
    cv = wh.current_version(CUTOUTS.name)
    assert IMAGE_LAYOUT.row_group_rows == BLOCK_ROWS == 64
    big = [f for f in cv.files() if pq.read_metadata(f).num_rows > 64]
    assert big  # some partitions span several row groups
    for f in big:
        md = pq.read_metadata(f)
        assert md.num_row_groups == -(-md.num_rows // 64)
        rg = md.row_group(0)
        codecs = {
            rg.column(i).path_in_schema: rg.column(i).compression for i in range(rg.num_columns)
        }
        assert codecs["g_image"] == codecs["y_variance"] == "UNCOMPRESSED"
        assert codecs["g_mask"] == codecs["ra"] == "SNAPPY"


def test_the_cutouts_table_in_the_new_layout_is_valid_hats_and_opens_in_lsdb(stores):
    pytest.importorskip("hats")
    lsdb = pytest.importorskip("lsdb")
    from hats.io.validation import is_valid_catalog

    wh, _old, _base = stores
    cv = wh.current_version(CUTOUTS.name)
    assert is_valid_catalog(str(cv.path), strict=True)
    cat = lsdb.open_catalog(cv.path, columns=["object_id", "g_image"])
    df = cat.compute()
    assert len(df) == cv.nrows
    oid = int(df["object_id"].iloc[0])
    assert np.array_equal(
        np.frombuffer(df["g_image"].iloc[0], "<f4"), noise(oid, 0, "image").ravel()
    )


@pytest.mark.parametrize(
    ("split", "size"), [(None, S), ("train", S), ("test", S), (None, 6), ("train", 13)]
)
def test_old_and_new_layouts_export_the_same_bytes_and_the_right_pixels(stores, split, size):
    wh, old, base = stores
    opts = ExportOptions(size=size, allow_missing_bands=True)
    name = f"{split or 'all'}-{size}.h5"
    new_file = export_hdf5(wh, base / "out-new" / name, split=split, sql=SQL, options=opts).path
    old_file = export_hdf5(old, base / "out-old" / name, split=split, sql=SQL, options=opts).path
    assert sha256(new_file) == sha256(old_file)
    with h5py.File(new_file) as h5:
        ids = h5["object_id"][:]
        assert len(ids) > 2 * 64 or split is not None
        every = [r[0] for r in objects(wh, view="hsc_forced")]
        only_gr, big = set(every[-5:]), set(every[:-5:50])
        assert big & set(ids.tolist()) or split == "test"  # the test split is small
        for j, oid in enumerate(ids.tolist()):
            for k in range(len(BANDS)):
                for plane in ("image", "variance", "mask"):
                    got = h5[plane][j, k]
                    if oid in only_gr and k > 1:
                        assert h5[f"missing_{BANDS[k]}"][j]  # NaN images, NO_DATA masks
                        continue
                    stored = noise(oid, k, plane, BIG if oid in big else S)
                    want = fit_to_size(stored, size, fill=PLANES[plane][2]).array
                    assert np.array_equal(got, want), (oid, k, plane)


def test_hf_row_groups_filled_block_by_block_equal_the_hdf5_pixels(stores):
    wh, old, base = stores
    opts = ExportOptions(size=S)
    sql = "SELECT * FROM ml_objects WHERE object_id IN (SELECT object_id FROM cutouts)"
    sql += " AND object_id NOT IN (SELECT object_id FROM cutouts WHERE y_height IS NULL)"
    h5path = export_hdf5(wh, base / "hf-ref.h5", split="train", sql=sql, options=opts).path
    new = export_hf(wh, base / "hf-new", splits=["train"], sql=sql, options=opts, progress=False)
    was = export_hf(old, base / "hf-old", splits=["train"], sql=sql, options=opts, progress=False)
    assert [sha256(f) for f in new.files] == [sha256(f) for f in was.files]
    table = pq.read_table([str(f) for f in new.files])
    assert pq.ParquetFile(new.files[0]).metadata.num_row_groups >= 1
    with h5py.File(h5path) as h5:
        assert table.column("object_id").to_pylist() == h5["object_id"][:].tolist()
        for plane in ("image", "variance", "mask"):
            col = table.column(plane).combine_chunks().flatten().flatten().flatten()
            assert np.array_equal(col.to_numpy().reshape(h5[plane].shape), h5[plane][:]), plane
