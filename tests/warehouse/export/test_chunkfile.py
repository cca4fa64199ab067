"""Uncompressed image datasets written by chunk offset (warehouse/export/chunkfile.py): chunks
allocated when the dataset is created, each galaxy's bytes written at its chunk's offset
(copied as stored from the partition files, pages.py, or from blocks), the fill value in every
chunk no row wrote. The files read back in h5py with the values, chunk shape, fill values and
attributes an export written by HDF5 itself (lzf) has, and the same bytes every time."""

from __future__ import annotations

import mmap
import os

import h5py
import numpy as np
import pytest

from tests.warehouse.cutouts.test_cutouts import objects
from tests.warehouse.export.test_blocks import BANDS, BIG, S, noise, sha256, stores  # noqa: F401
from warehouse.cutouts import CUTOUTS
from warehouse.export import ExportOptions, export_hdf5
from warehouse.export.chunkfile import ChunkFile, PlaneViews, byte_ranges
from warehouse.export.options import PLANES
from warehouse.images.fit import fit_to_size

# every object with all five bands (the ones with g and r only are left out)
COMPLETE = (
    "SELECT * FROM ml_objects WHERE object_id IN (SELECT object_id FROM cutouts)"
    " AND object_id NOT IN (SELECT object_id FROM cutouts WHERE y_height IS NULL)"
)


def same_values(a: h5py.File, b: h5py.File, compressed: frozenset[str] = frozenset()) -> None:
    """Every dataset and attribute of ``a`` equal to ``b``'s (the export digest aside: the
    options differ), NaN where ``b`` has NaN; ``compressed``: datasets only ``b`` compresses."""
    assert sorted(a) == sorted(b) and sorted(a.attrs) == sorted(b.attrs)
    for key in a.attrs:
        if key != "export_sha256":
            assert np.array_equal(a.attrs[key], b.attrs[key]), key
    for name in a:
        x, y = a[name], b[name]
        assert (x.shape, x.dtype, x.chunks) == (y.shape, y.dtype, y.chunks), name
        nan = x.dtype.kind == "f"
        assert np.array_equal(x.fillvalue, y.fillvalue, equal_nan=nan), name
        assert dict(x.attrs) == dict(y.attrs), name
        assert np.array_equal(x[()], y[()], equal_nan=nan), name
        if name not in compressed:
            assert x.compression == y.compression, name


def test_chunks_are_allocated_at_creation_and_unwritten_ones_read_the_fill(tmp_path):
    path = tmp_path / "c.h5"
    planes = np.arange(6 * 2 * 3 * 3, dtype=np.float32).reshape(6, 2, 3, 3)
    with h5py.File(path, "w", libver=("v108", "v108")) as h5:
        chunks = ChunkFile(h5)
        dset = chunks.create("image", (6, 2, 3, 3), np.float32, np.nan)
        h5.create_dataset("other", data=np.arange(6))  # HDF5 writes beside the chunks
        assert dset.id.get_num_chunks() == 6  # all allocated, none written yet
        chunks.write("image", 1, planes[1:3])  # a block of rows
        cubes = [planes[:, 0], planes[:, 1]]  # per band, as stored: rows 5 and 4 -> 4 and 5
        chunks.write("image", 4, PlaneViews(cubes, np.array([5, 4])))
        chunks.finish()
        offsets = chunks.offsets["image"]
    with h5py.File(path) as h5:
        dset = h5["image"]
        for r in range(6):
            assert dset.id.get_chunk_info_by_coord((r, 0, 0, 0)).byte_offset == offsets[r]
        assert np.isnan(dset[0]).all() and np.isnan(dset[3]).all()  # the fill, written
        assert np.array_equal(dset[1:3], planes[1:3])
        assert np.array_equal(dset[4], planes[5]) and np.array_equal(dset[5], planes[4])
        assert np.isnan(dset.fillvalue) and dset.chunks == (1, 2, 3, 3)
        assert h5["other"][:].tolist() == list(range(6))


@pytest.mark.parametrize(("split", "size"), [(None, S), ("train", S), (None, 13), (None, 6)])
def test_exports_written_by_offset_hold_what_hdf5_writes_itself(stores, split, size):  # noqa: F811
    wh, _old, base = stores
    out = base / f"offset-{split}-{size}"
    opts = ExportOptions(size=size)
    plain = export_hdf5(wh, out / "plain.h5", split=split, sql=COMPLETE, options=opts).path
    again = export_hdf5(wh, out / "again.h5", split=split, sql=COMPLETE, options=opts).path
    lzf = ExportOptions(size=size, compression="lzf")  # chunks HDF5 writes and compresses
    reference = export_hdf5(wh, out / "lzf.h5", split=split, sql=COMPLETE, options=lzf).path
    assert sha256(plain) == sha256(again)
    with h5py.File(plain) as a, h5py.File(reference) as b:
        same_values(a, b, compressed=frozenset({"image", "variance", "mask"}))
        image = a["image"]
        alloc = image.id.get_create_plist().get_alloc_time()
        assert alloc == h5py.h5d.ALLOC_TIME_EARLY
        assert image.id.get_num_chunks() == image.shape[0] and image.compression is None
        ids = a["object_id"][:].tolist()
        big = {r[0] for r in objects(wh, view="hsc_forced")[:-5:50]}  # stored 11 x 11
        for j in (0, len(ids) // 2, len(ids) - 1):
            for k in range(len(BANDS)):
                for plane in ("image", "variance", "mask"):
                    stored = noise(ids[j], k, plane, BIG if ids[j] in big else S)
                    want = fit_to_size(stored, size, fill=PLANES[plane][2]).array
                    assert np.array_equal(a[plane][j, k], want), (ids[j], k, plane)


def test_old_and_new_layouts_still_give_the_same_bytes(stores):  # noqa: F811
    """Planes copied as stored (uncompressed pages) and decoded by pyarrow (snappy) land in
    the same chunks: the files are identical."""
    wh, old, base = stores
    opts = ExportOptions(size=S)
    new_file = export_hdf5(wh, base / "lay-new.h5", sql=COMPLETE, options=opts).path
    old_file = export_hdf5(old, base / "lay-old.h5", sql=COMPLETE, options=opts).path
    assert sha256(new_file) == sha256(old_file)


def test_byte_ranges_cover_each_value_and_its_length_from_a_page_start():
    nbytes = 100
    src = np.array([[8196, 8300], [8404, 200000], [300000, 8508]])  # values after a 4-byte length
    ranges = byte_ranges(src, nbytes, gap=1000)
    page = [a // mmap.PAGESIZE * mmap.PAGESIZE for a in (8192, 199996, 299996)]
    ends = (8508 + nbytes, 200000 + nbytes, 300000 + nbytes)
    assert ranges == [(a, b - a) for a, b in zip(page, ends, strict=True)]
    assert all(start % mmap.PAGESIZE == 0 for start, _ in ranges)
    for offset in src.ravel().tolist():  # every value's length and bytes inside one range
        assert any(a <= offset - 4 and offset + nbytes <= a + n for a, n in ranges)
    assert byte_ranges(src, nbytes, gap=10**6) == [(page[0], 300100 - page[0])]
    assert byte_ranges(np.zeros((0, 5), np.int64), nbytes) == []


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="needs posix_fadvise")
def test_an_export_from_a_store_out_of_the_page_cache_has_the_same_bytes(stores):  # noqa: F811
    """The partitions' pages are mapped ahead of the copy (read from disk where they left the
    page cache): dropped from it first, the export is byte-identical to one from memory."""
    wh, _old, base = stores
    opts = ExportOptions(size=S)
    warm = export_hdf5(wh, base / "warm.h5", sql=COMPLETE, options=opts).path
    for path in wh.current_version(CUTOUTS.name).files():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    cold = export_hdf5(wh, base / "cold.h5", sql=COMPLETE, options=opts).path
    assert sha256(cold) == sha256(warm)
