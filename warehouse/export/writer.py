"""Writing one planned export into an open HDF5 file (or an hf export's row groups): the
datasets are created pre-sized (catalogrows.py); catalog rows are written batch by batch (into an
HDF5 file, a block of rows at a time); the pixels go one image-table partition at a time, one
plane at a time: copied as stored into chunks allocated at creation (pages.py, chunkfile.py),
made block by block (blocks.py), or read memory-mapped and placed without temporaries. The loop
that drives it is :mod:`warehouse.export.stream`."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse import progress
from warehouse.cutouts import band_column
from warehouse.errors import ExportError
from warehouse.export.blocks import BlockMaker, PartitionFile, fine_switching, readable
from warehouse.export.catalogrows import CatalogBlocks, block_rows, create_catalog
from warehouse.export.chunkfile import ChunkFile, PlaneViews
from warehouse.export.columns import _PREFIX, _check_labels, _values, to_numpy
from warehouse.export.early import FIRST_PLANE, EarlyPartition, shape_columns
from warehouse.export.options import PLANES, ExportOptions
from warehouse.export.pages import plane_offsets
from warehouse.export.pixels import (
    _binary_view,
    _cubes,
    _gather,
    _int_or_zero,
    _one_chunk,
    _placement,
    _runs,
    _valid,
    fit_actions,
)
from warehouse.export.plan import _Plan

WRITE_BLOCK_ROWS = 64  # images assembled per HDF5 write
CATALOG_BATCH_ROWS = 2048  # catalog rows per streamed batch
PARTITIONS_AHEAD = 2  # image partitions queued for the writer thread (one being copied)


class _Writer:
    """Streams one export into an open h5py File."""

    def __init__(
        self,
        h5,
        plan: _Plan,
        cv,
        opts: ExportOptions,
        progress,
        early: EarlyPartition | None = None,
    ) -> None:
        self.h5, self.plan, self.opts, self.progress = h5, plan, opts, progress
        self.early = early  # the first partition, read while the export was planned
        self.size = opts.size
        self.planes = list(plan.planes)
        n, nb, s = plan.rows, len(plan.bands), opts.size
        comp: dict = {}
        if opts.compression == "gzip":
            comp = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
        elif opts.compression == "lzf":
            comp = {"compression": "lzf", "shuffle": True}
        self.images = {}
        # Planes whose chunks (one galaxy each, no filter) are written as they are, bytes
        # straight into the file: h5py's selection and HDF5's chunk cache cost a copy each.
        self.direct = set() if comp or not isinstance(h5, h5py.File) else set(self.planes)
        # When every row has every band, those chunks are allocated at creation and written by
        # file offset (chunkfile.py); else (--allow-missing-bands) rows without an image stay
        # unallocated, the fill value, and the rest go through write_direct_chunk.
        complete = not any(plan.missing.values())
        self.chunks = ChunkFile(h5) if self.direct and complete else None
        # Planes made block by block row group by row group (blocks.py) where every exported
        # row is S x S: direct writes, and hf row groups (RowGroupFile: filled in place).
        self.blockwise = self.direct if isinstance(h5, h5py.File) else set(self.planes)
        for plane in self.planes:
            dtype, missing_value, _pad = PLANES[plane]
            if self.chunks is not None:
                shape = (n, nb, s, s)
                self.images[plane] = self.chunks.create(plane, shape, dtype, missing_value)
                continue
            self.images[plane] = h5.create_dataset(
                plane,
                shape=(n, nb, s, s),
                dtype=dtype,
                chunks=(1, nb, s, s),
                fillvalue=missing_value,  # rows with no cutout at all are never written
                track_times=False,
                **comp,
            )
        self.datasets: dict[str, h5py.Dataset] = {}
        self.missing: dict[str, h5py.Dataset] = {}
        self.fit_counts: dict[str, int] = {}
        self.buffers: dict[str, np.ndarray] = {}
        bounds = sorted((p.h29_range(), p) for p in cv.partitions)
        self.part_lo = np.array([r[0] for r, _ in bounds], dtype=np.int64)
        self.part_hi = np.array([r[1] for r, _ in bounds], dtype=np.int64)
        self.part_paths = [cv.path / p.relpath for _, p in bounds]
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-export-read")
        self.ahead: dict[tuple[int, str], Future] = {}
        self.last = False  # the partition being written is the export's last: no read ahead
        self.gathers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-export-gather")
        # Direct writes of S x S planes: blocks made row group by row group (blocks.py).
        self.maker = BlockMaker(self.size, list(plan.bands), band_column)
        self.stored: dict[tuple[int, str], tuple[PartitionFile, dict | None]] = {}
        self.catalog_made = False
        self.blocks: CatalogBlocks | None = None  # HDF5: catalog rows a block at a time
        if self.chunks is None:  # else with the first batch, the pixels' writes under way
            self._catalog()
        if self.blockwise and self.part_paths:  # likely the first (read while the query runs)
            self.read_ahead(0)

    def _catalog(self) -> None:
        """The catalog datasets (and those of the fit, zeropoints and missing bands)."""
        self.catalog_made = True
        made = create_catalog(self.h5, self.plan, self.opts.allow_missing_bands)
        self.datasets, self.fit, self.zp, self.sim, self.missing = made
        if isinstance(self.h5, h5py.File):
            every = [*self.datasets.values(), self.fit, self.zp, self.sim, *self.missing.values()]
            self.blocks = CatalogBlocks(block_rows(every, CATALOG_BATCH_ROWS))

    # -- catalog rows

    def write_batch(self, batch: pa.RecordBatch, start: int) -> None:
        if not self.catalog_made:
            self._catalog()
        n = batch.num_rows
        stop = start + n
        for c in self.plan.columns:
            values, nulls = _values(batch.column(c.name), c)
            if c.name in self.plan.labels:
                _check_labels(c.name, values, nulls, self.plan.labels[c.name])
            self._rows(self.datasets[c.name], start, values)
            if c.nullable:
                isnull = np.zeros(n, bool) if nulls is None else nulls
                self._rows(self.datasets[c.name + "_isnull"], start, isnull)
        bands = self.plan.bands
        cols = [
            (
                batch.column(_PREFIX + band_column(b, "height")),
                batch.column(_PREFIX + band_column(b, "width")),
            )
            for b in bands
        ]
        heights = [_int_or_zero(h) for h, _ in cols]
        widths = [_int_or_zero(w) for _, w in cols]
        valid = [_valid(h) for h, _ in cols]
        actions, counts = fit_actions(heights, widths, valid, self.size)
        for action, count in counts.items():
            self.fit_counts[action] = self.fit_counts.get(action, 0) + count
        self._rows(self.fit, start, actions)
        zp = np.full((n, len(bands)), np.nan)
        for k, b in enumerate(bands):
            col = batch.column(_PREFIX + band_column(b, "zeropoint"))
            zp[:, k] = to_numpy(col).astype(np.float64)
        self._rows(self.zp, start, zp)
        self._rows(self.sim, start, to_numpy(batch.column(_PREFIX + "simulated")))
        for b, dset in self.missing.items():
            self._rows(dset, start, ~_valid(batch.column(_PREFIX + band_column(b, "height"))))
        if self.blocks is not None:
            self.blocks.rows_done(stop)

    def _rows(self, dset, start: int, values: np.ndarray) -> None:
        """Rows ``start ..`` of catalog dataset ``dset``: now, or with their block."""
        if self.blocks is None:
            dset[start : start + len(values)] = values
        else:
            self.blocks.put(dset, values)

    def _buffer(self, plane: str, dtype) -> np.ndarray:
        """One reused block per plane: fresh 20 MB arrays would cost a page fault per 4 KB."""
        if plane not in self.buffers:
            shape = (WRITE_BLOCK_ROWS, len(self.plan.bands), self.size, self.size)
            self.buffers[plane] = np.empty(shape, dtype)
        return self.buffers[plane]

    def _read_plane(self, k: int, plane: str) -> pa.Table | None:
        """The ``plane`` columns of partition ``k``'s bands, every row (None: none here)."""
        pf = pq.ParquetFile(self.part_paths[k], memory_map=True, pre_buffer=False)
        names = set(pf.schema_arrow.names)
        cols = [band_column(b, plane) for b in self.plan.bands if band_column(b, plane) in names]
        if not cols:
            return None
        with readable(self.part_paths[k]):
            return pf.read(columns=cols)

    def _plane(self, k: int, plane: str) -> pa.Table | None:
        """Partition ``k``'s ``plane``, read ahead in a thread while the previous one was being
        written (pyarrow reads without the GIL), and the next one's read started: partitions
        come in order, so the next is this partition's next plane, else partition k + 1's
        first. At most two planes are in memory."""
        key = (k, plane)
        ahead = self.ahead.pop(key, None)
        for stale in list(self.ahead):  # read ahead for a partition this export skipped
            self.ahead.pop(stale).result()
        table = ahead.result() if ahead is not None else self._read_plane(k, plane)
        nxt = self._next(k, plane)
        if nxt is not None and not self.blockwise:
            self.ahead[nxt] = self.pool.submit(self._read_plane, *nxt)
        return table

    def _next(self, k: int, plane: str) -> tuple[int, str] | None:
        """The (partition, plane) likely written after ``plane`` of partition ``k``: partitions
        come in order, so this partition's next plane, else partition k + 1's first."""
        i = self.planes.index(plane)
        nxt = (k, self.planes[i + 1]) if i + 1 < len(self.planes) else (k + 1, self.planes[0])
        if nxt[0] < len(self.part_paths) and not (self.last and nxt[0] != k):
            return nxt
        return None

    def read_ahead(self, k: int) -> None:
        """Start reading partition ``k``'s first plane, unless a read is already under way (the
        catalog rows of a batch tell which partition comes next before its pixels are due)."""
        if not 0 <= k < len(self.part_paths):
            return
        if self.chunks is not None and (self.chunks.pending or self._stored(k, self.planes[0])[1]):
            return  # copied as stored, or the writer thread reads ahead what it writes next
        if self.blockwise:  # its first row group, for the blocks
            self.maker.read_ahead(self.part_paths[k], self.planes[0])
        elif not self.ahead:
            self.ahead[(k, self.planes[0])] = self.pool.submit(self._read_plane, k, self.planes[0])

    def close(self) -> None:
        if self.chunks is not None:  # first: its thread may be waiting for the maker's blocks
            self.chunks.close()
        for future in self.ahead.values():
            future.cancel()
        self.ahead.clear()
        self.pool.shutdown(wait=True)
        self.gathers.shutdown(wait=True)
        self.maker.close()

    def finish(self) -> None:
        """Every row written: the catalog rows still gathered, and the fill value into the
        chunks of direct planes no row wrote."""
        if self.blocks is not None:
            self.blocks.finish()
        if self.chunks is not None:
            self.chunks.finish()

    def partition_of(self, h29: np.ndarray) -> np.ndarray:
        k = np.searchsorted(self.part_lo, h29, side="right") - 1
        inside = (k >= 0) & (h29 < self.part_hi[np.clip(k, 0, None)])
        return np.where(inside, k, -1)

    # -- images of one cutouts partition

    def write_partition(self, k: int, rows: np.ndarray, ids: np.ndarray) -> None:
        if self.chunks is not None:  # read at most this far ahead of the writer thread
            self.chunks.wait_below(PARTITIONS_AHEAD)
        part = k  # k names a row of the file below
        path = self.part_paths[k]
        bands = self.plan.bands
        early = None if self.early is None else self.early.get(path)  # read while planning
        if early is not None:
            pfile, meta = early[0], early[1]
            if self.early is not None:  # used once: its memory map goes with the copy
                self.early.drop()
                self.early = None
            if self.planes[0] == FIRST_PLANE:
                self.stored.setdefault((k, FIRST_PLANE), (early[0], early[2]))
        else:  # memory-mapped: the pixel bytes are read straight from the page cache
            pfile = PartitionFile(path)
            # In this thread: pyarrow's pool may be busy decoding the next plane (read ahead).
            with readable(path):
                columns = ["object_id", *shape_columns(bands, pfile.names)]
                meta = pfile.pf.read(columns=columns, use_threads=False)
        names = pfile.names
        stored = to_numpy(meta.column("object_id"))
        sorter = np.argsort(stored, kind="stable")
        at = np.searchsorted(stored, ids, sorter=sorter)
        pos = sorter[np.clip(at, 0, len(stored) - 1)]
        if len(stored) == 0 or not np.array_equal(stored[pos], ids):  # pragma: no cover
            raise ExportError(f"{path}: does not hold the cutouts the catalog says it does")
        shapes = {}
        for b in bands:
            if band_column(b, "height") in names:
                h = meta.column(band_column(b, "height"))
                w = meta.column(band_column(b, "width"))
                shapes[b] = (_int_or_zero(h)[pos], _int_or_zero(w)[pos], _valid(h)[pos])
        # Every stored row of every band S x S: then each stored plane is as long as an
        # exported one, as the page-offset copy (pages.py) needs: planes of other sizes in a
        # page could add up to the same total and shift the offsets.
        uniform = all(
            band_column(b, "height") in names
            and _valid(meta.column(band_column(b, "height"))).all()
            and (_int_or_zero(meta.column(band_column(b, "height"))) == self.size).all()
            and (_int_or_zero(meta.column(band_column(b, "width"))) == self.size).all()
            for b in bands
        )
        del meta
        # Every exported row has every band: blocks made row group by row group (blocks.py).
        complete = all(b in shapes and shapes[b][2].all() for b in bands)
        hw = np.zeros((len(pos), len(bands), 2), np.int64)
        for bi, b in enumerate(bands):
            if b in shapes:
                hw[:, bi, 0], hw[:, bi, 1] = shapes[b][0], shapes[b][1]
        for plane in self.planes:
            dtype, missing_value, pad = PLANES[plane]
            if complete and plane in self.blockwise:
                if uniform and self._write_mapped(pfile, k, plane, rows, pos):
                    continue
                if any(band_column(b, plane) in names for b in bands):  # else the fill stands
                    self._write_blocks(pfile, k, plane, rows, pos, hw)
                continue
            table = self._plane(part, plane)  # all rows; those exported are picked by pos, uncopied
            if table is None:  # no band of this plane here: the fill value stands
                continue
            views = {}
            view = "<i4" if plane == "mask" else "<f4"
            for b in bands:
                name = band_column(b, plane)
                if name in names:
                    views[b] = _binary_view(_one_chunk(table.column(name)))
            full = all(
                b in views
                and views[b][2][pos].all()
                and (shapes[b][0] == self.size).all()
                and (shapes[b][1] == self.size).all()
                for b in bands
            )
            cubes = _cubes(views, bands, self.size, view) if full else None
            dset = self.images[plane]
            if cubes is not None and plane in self.direct:  # the usual case: S x S everywhere
                self._write_cubes(plane, dtype, cubes, rows, pos)
                continue
            # Row groups of an hf export (RowGroupDataset) are assembled in place, one at a time;
            # an HDF5 dataset gets blocks of a reused buffer.
            in_place = getattr(dset, "view", None)
            group = getattr(dset, "group", None)
            buffer = self._buffer(plane, dtype) if in_place is None else np.empty(0, dtype)
            for a, b_ in _runs(rows, group or WRITE_BLOCK_ROWS, group):
                r0 = int(rows[a])
                block = buffer[: b_ - a] if in_place is None else in_place(r0, r0 + b_ - a)
                if cubes is not None:  # every band S x S in this file: whole-band copies
                    _gather(block, cubes, pos[a:b_])
                    if in_place is None:
                        self._put(plane, r0, block)
                    continue
                if not full:  # else every pixel is written below
                    block.fill(missing_value)
                for j in range(a, b_):
                    for bi, b in enumerate(bands):
                        if b not in views or b not in shapes or not shapes[b][2][j]:
                            continue
                        offsets, data, valid = views[b]
                        k = pos[j]  # the row in the partition file
                        if not valid[k]:
                            continue
                        h, w = int(shapes[b][0][j]), int(shapes[b][1][j])
                        px = data[offsets[k] : offsets[k + 1]].view(view).reshape(h, w)
                        src, dst = _placement(h, w, self.size)
                        out = block[j - a, bi]
                        if dst != (slice(0, self.size), slice(0, self.size)):
                            out[...] = pad
                        out[dst] = px[src]  # = fit_to_size(px, size, fill=pad), no temporaries
                if in_place is None:
                    self._put(plane, r0, block)
            del table, views

    def _write_mapped(self, part: PartitionFile, k: int, plane: str, rows, pos) -> bool:
        """Rows ``rows`` of ``plane`` copied from the file rows ``pos`` of ``part`` as they are
        stored (pages.py), in the writer thread; False (nothing done) unless every band's
        planes there are in uncompressed PLAIN pages of the dataset's dtype (the caller knows
        every stored plane of the file is S x S)."""
        if self.chunks is None or plane not in self.direct:
            return False
        part, found = self._stored(k, plane, part)
        self.stored.pop((k, plane), None)  # looked at once (read ahead: for its first plane)
        if found is None:
            return False
        src = np.stack([found[band_column(b, plane)][pos] for b in self.plan.bands], axis=1)
        nbytes = self.size**2 * np.dtype(PLANES[plane][0]).itemsize
        self.chunks.write_mapped(plane, rows, src, part.mapped(), nbytes, str(part.path))
        return True

    def _stored(self, k: int, plane: str, part: PartitionFile | None = None):
        """Partition ``k``'s file and where each row's S x S ``plane`` of every band lies in it
        (pages.py), or None where they are not stored so (then read through pyarrow)."""
        early = None if self.early is None else self.early.get(self.part_paths[k])
        if (k, plane) not in self.stored and early is not None and plane == FIRST_PLANE:
            self.stored[(k, plane)] = (early[0], early[2])  # read while planning
        if (k, plane) not in self.stored:
            part = part or PartitionFile(self.part_paths[k])
            dtype = np.dtype(PLANES[plane][0])
            columns = [band_column(b, plane) for b in self.plan.bands]
            found = None
            stored = np.dtype("<i4" if plane == "mask" else "<f4")
            if dtype == stored and set(columns) <= part.names:
                nbytes = self.size**2 * dtype.itemsize
                found = plane_offsets(part.pf, part.mapped(), columns, nbytes)
            self.stored[(k, plane)] = (part, found)
        return self.stored[(k, plane)]

    def _write_blocks(
        self,
        part: PartitionFile,
        k: int,
        plane: str,
        rows: np.ndarray,
        pos: np.ndarray,
        hw: np.ndarray,
    ) -> None:
        """Rows ``rows`` of ``plane`` from the file rows ``pos`` of partition ``k``: blocks made
        row group by row group in the maker's thread while the ones before are written."""
        dtype, missing_value, pad = PLANES[plane]
        nxt = self._next(k, plane)
        ahead = None if nxt is None else (self.part_paths[nxt[0]], nxt[1])
        dset = self.images[plane]
        # hf row groups (RowGroupDataset) are filled in place by the maker's thread
        into, group = getattr(dset, "view", None), getattr(dset, "group", None)
        fill = (missing_value, pad)
        views = self.chunks is not None and plane in self.direct  # S x S planes, uncopied
        blocks = self.maker.blocks(
            part, plane, dtype, fill, rows, pos, hw, ahead, into, group, views=views
        )
        if self.chunks is not None and plane in self.direct:  # in the writer thread
            self.chunks.write_blocks(plane, blocks)
            return
        with fine_switching():
            for r0, block in blocks:
                if into is None:
                    self._put(plane, r0, block)

    def _write_cubes(self, plane: str, dtype, cubes: list, rows: np.ndarray, pos: np.ndarray):
        """Rows ``rows`` of ``plane`` from the file rows ``pos`` of ``cubes`` (a (rows, S, S)
        array per band): each block of galaxies is gathered from the band planes in a thread
        (NumPy copies without the GIL) while the block before is being written."""
        runs = list(_runs(rows, WRITE_BLOCK_ROWS))
        buffers = [self._buffer(plane, dtype), self._buffer(plane + "/2", dtype)]

        def gather(i: int) -> np.ndarray:
            a, b = runs[i]
            return _gather(buffers[i % 2][: b - a], cubes, pos[a:b])

        pending = self.gathers.submit(gather, 0) if runs else None
        for i, (a, _b) in enumerate(runs):
            assert pending is not None
            block = pending.result()
            pending = self.gathers.submit(gather, i + 1) if i + 1 < len(runs) else None
            self._put(plane, int(rows[a]), block)

    def _put(self, plane: str, r0: int, block: np.ndarray | PlaneViews) -> None:
        """Rows ``r0 ..`` of ``plane``: a chunk per row at its offset when it can be."""
        if self.chunks is not None and plane in self.direct:
            self.chunks.write(plane, r0, block)
            return
        assert isinstance(block, np.ndarray)
        if plane not in self.direct:
            self.images[plane][r0 : r0 + len(block)] = block
            return
        chunk = self.images[plane].id.write_direct_chunk
        for j in range(len(block)):
            chunk((r0 + j, 0, 0, 0), block[j])


def _progress(total: int, desc: str, enabled: bool | None):
    return progress.bar(total, desc=desc, unit="galaxy", progress=enabled)
