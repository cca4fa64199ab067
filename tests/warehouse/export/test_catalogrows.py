"""The catalog of an HDF5 export written a block of rows at a time, whatever batches its rows
came in; the fit actions worked out per distinct set of shapes; the image partitions read
at most a few ahead of the copy."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest

from warehouse.cutouts import fit_action_of
from warehouse.export.catalogrows import CatalogBlocks, block_rows
from warehouse.export.chunkfile import ChunkFile
from warehouse.export.pixels import fit_actions

N = 23
IDS = np.arange(N, dtype=np.int64) * 7 + (1 << 60)  # beyond float64's exact integers
NAMES = np.array([f"obj-{'x' * (i % 5)}{i}" for i in range(N)], dtype=object)
ZP = np.arange(2 * N, dtype=np.float64).reshape(N, 2) / 3


def _write(path, batches: list[int], rows: int | None) -> None:
    """The three datasets of ``N`` rows, arriving in ``batches`` (row counts); ``rows``: rows
    per block (None: each batch written as it comes)."""
    strings = h5py.string_dtype("utf-8")
    with h5py.File(path, "w", libver=("v108", "v108"), track_order=False) as h5:
        ids = h5.create_dataset("object_id", shape=(N,), dtype=np.int64, track_times=False)
        names = h5.create_dataset("name", shape=(N,), dtype=strings, track_times=False)
        zp = h5.create_dataset("zeropoint", shape=(N, 2), dtype="f8", track_times=False)
        blocks = None if rows is None else CatalogBlocks(rows)
        start = 0
        for n in batches:
            stop = start + n
            for dset, values in ((ids, IDS), (names, NAMES), (zp, ZP)):
                if blocks is None:
                    dset[start:stop] = values[start:stop]
                else:
                    blocks.put(dset, values[start:stop])
            if blocks is not None:
                blocks.rows_done(stop)
            start = stop
        if blocks is not None:
            blocks.finish()


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("batches", [[N], [1] * N, [3, 5, 7, 8], [8, 8, 7], [4, 4, 4, 11]])
def test_blocks_give_the_same_values_and_bytes_however_the_rows_arrive(tmp_path, batches):
    _write(tmp_path / "one.h5", [N], rows=8)
    _write(tmp_path / "b.h5", batches, rows=8)
    with h5py.File(tmp_path / "b.h5") as h5:
        assert h5["object_id"][:].tolist() == IDS.tolist()  # 64-bit ids exact
        assert h5["name"].asstr()[:].tolist() == NAMES.tolist()
        assert np.array_equal(h5["zeropoint"][:], ZP)
    # the strings land in HDF5's global heap in write order: same writes, same bytes
    assert _sha256(tmp_path / "b.h5") == _sha256(tmp_path / "one.h5")


def test_written_as_they_come_the_batches_show_in_the_bytes(tmp_path):
    """Why blocks: without them the bytes follow the batches (so a Dask export, whose
    batches are cut by partition, would differ from a local one)."""
    _write(tmp_path / "a.h5", [N], rows=None)
    _write(tmp_path / "b.h5", [3, 5, 7, 8], rows=None)
    assert _sha256(tmp_path / "a.h5") != _sha256(tmp_path / "b.h5")


def test_block_rows_fill_the_budget_in_whole_batches(tmp_path):
    with h5py.File(tmp_path / "w.h5", "w") as h5:
        narrow = [h5.create_dataset("a", shape=(10,), dtype="f8")]
        wide = [h5.create_dataset(f"c{i}", shape=(10, 5), dtype="f8") for i in range(400)]
        text = [h5.create_dataset("s", shape=(10,), dtype=h5py.string_dtype("utf-8"))]
        rows = block_rows(narrow, 2048)
        assert rows % 2048 == 0 and rows * 8 <= 32 << 20 < (rows + 2048) * 8
        assert block_rows(wide, 2048) == 2048  # 16 kB a row: a block is at least a batch
        assert block_rows(text, 100) % 100 == 0
        assert block_rows(text, 100) < block_rows(narrow, 100)


def test_fit_actions_are_those_of_each_row_shapes():
    rng = np.random.default_rng(3)
    n, size = 400, 9
    heights = [rng.choice([7, 9, 11], n) for _ in range(3)]
    widths = [rng.choice([8, 9, 12], n) for _ in range(3)]
    valid = [rng.random(n) > 0.2 for _ in range(3)]
    valid[0][:5] = valid[1][:5] = valid[2][:5] = False  # no image in any band
    actions, counts = fit_actions(heights, widths, valid, size)
    expected = [
        fit_action_of(shapes, size) if shapes else "missing"
        for shapes in (
            tuple(
                (int(h[i]), int(w[i]))
                for h, w, v in zip(heights, widths, valid, strict=True)
                if v[i]
            )
            for i in range(n)
        )
    ]
    assert actions.tolist() == expected
    assert counts == {a: expected.count(a) for a in set(expected)}
    assert {"missing", "none", "cropped", "padded", "cropped+padded"} <= set(counts)


def test_partitions_are_queued_at_most_a_few_ahead_of_the_copy(tmp_path):
    """A partition's file is read (its pages mapped) only once fewer than the bound wait for
    the writer thread: memory holds a few partitions, not the export's."""
    release = [threading.Event() for _ in range(3)]
    with h5py.File(tmp_path / "q.h5", "w") as h5, ThreadPoolExecutor(3) as pool:
        chunks = ChunkFile(h5)
        chunks.pending.extend(pool.submit(e.wait, 10) for e in release)
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (chunks.wait_below(2), done.set()))
        waiter.start()
        assert not done.wait(0.2)  # three queued: the next read waits
        release[0].set()
        assert not done.wait(0.2)  # two queued: still
        release[1].set()
        assert done.wait(5)  # one left: it goes on
        waiter.join()
        assert len(chunks.pending) == 1
        release[2].set()
