"""Galaxy chunks of one image-table partition, made row group by row group in a worker thread
while the chunks before them are written.

Image tables are stored in row groups of a few dozen objects with uncompressed float planes
(``IMAGE_LAYOUT`` in :mod:`warehouse.store.contracts`), so a plane's pixels of one row group
are read from the memory-mapped file in one copy (pyarrow, without the GIL) and gathered into
blocks of galaxy chunks (bands, S, S) in a second (NumPy, without the GIL), cropped or padded
as :func:`~warehouse.images.fit.fit_to_size` does when stored planes are not S x S; the writer
(:mod:`warehouse.export.chunkfile`) writes each chunk at its offset in the file, straight from
the row group read when the planes are already S x S (``PlaneViews``: no gather), and an hf
export's row groups are filled in place. Files written before (one row group per partition,
snappy) are read the same way: their one row group is the whole partition's plane. (S x S
planes in uncompressed pages are not read here at all when exported to HDF5:
:mod:`warehouse.export.pages` finds their bytes in the file, copied to the export as stored.)

The worker needs the GIL briefly between its long GIL-free steps, while the main thread runs
Python between chunk writes; with the interpreter's default 5 ms switch interval every such
hand-over could stall the worker for up to 5 ms, so the writes run with a finer interval
(:func:`fine_switching`)."""

from __future__ import annotations

import contextlib
import mmap
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.errors import ExportError
from warehouse.export.chunkfile import PlaneViews
from warehouse.export.pixels import _binary_view, _one_chunk, _placement

BLOCK_ROWS = 64  # galaxy chunks per block handed to the writer
BLOCKS_AHEAD = 3  # blocks in flight (made or being made) ahead of the writer
AHEAD_ROWS = 256  # rows of row groups read ahead of a plane's first block (at least a group)
SWITCH_INTERVAL = 1e-4  # seconds: the interpreter's thread switch interval while writing


@contextlib.contextmanager
def fine_switching() -> Iterator[None]:
    """The interpreter's thread switch interval at :data:`SWITCH_INTERVAL` inside, restored on
    exit (see the module)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@contextlib.contextmanager
def readable(path: Path | str) -> Iterator[None]:
    """Reading the stored cutouts of the partition file ``path``: a file pyarrow cannot
    decode (damaged pages, truncated) is an :class:`ExportError` naming it."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(
            f"{path}: the stored cutouts cannot be read ({first}); the image table is damaged: "
            "ingest the objects again."
        ) from None


class PartitionFile:
    """A partition file of the image table, memory-mapped (pixels come from the page cache),
    with the first row of each of its row groups."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pf = pq.ParquetFile(path, memory_map=True, pre_buffer=False)
        md = self.pf.metadata
        sizes = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
        self.starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self.names = set(self.pf.schema_arrow.names)
        self._map: mmap.mmap | None = None

    def mapped(self) -> mmap.mmap:
        """The file's bytes, memory-mapped read-only (once)."""
        if self._map is None:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        return self._map

    def group_of(self, pos: np.ndarray) -> np.ndarray:
        """The row group holding each file row of ``pos``."""
        return np.searchsorted(self.starts, pos, side="right") - 1


def block_bounds(
    rows: np.ndarray, groups: np.ndarray, limit: int, align: int | None = None
) -> list[tuple[int, int]]:
    """[a, b) index ranges of ``rows`` of consecutive rows from one row group (``groups``), at
    most ``limit`` long; with ``align``, none holds rows of two blocks of ``align`` rows."""
    if rows.size == 0:
        return []
    cut = (np.diff(rows) != 1) | (np.diff(groups) != 0)
    if align:
        cut |= np.diff(rows // align) != 0
    edges = np.concatenate([[0], np.flatnonzero(cut) + 1, [rows.size]]).tolist()
    out = []
    for s, e in zip(edges[:-1], edges[1:], strict=True):
        out += [(a, min(a + limit, e)) for a in range(s, e, limit)]
    return out


class _Group:
    """One row group's planes of every band: a (rows, h, w) view of the read bytes when all
    its rows hold planes of one size (one copy per band and block, cropped or padded to S x S
    as :func:`~warehouse.images.fit.fit_to_size` does), else per-row access."""

    def __init__(self, table, columns: list[str | None], size: int, view: str, where: str):
        self.size, self.view, self.where = size, view, where
        self.flat: list[np.ndarray | None] = []  # the planes' values, when all of one length
        self.raw: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
        item = np.dtype(view).itemsize
        for name in columns:
            if name is None:
                self.flat.append(None)
                self.raw.append(None)
                continue
            offsets, data, valid = _binary_view(_one_chunk(table.column(name)))
            self.raw.append((offsets, data, valid))
            lengths = np.diff(offsets)
            flat = None
            if len(lengths) and valid.all() and (lengths == lengths[0]).all() and lengths[0]:
                if lengths[0] % item == 0:
                    raw = data[offsets[0] : offsets[-1]]
                    flat = raw.view(view).reshape(len(lengths), lengths[0] // item)
            self.flat.append(flat)

    def gather(self, block: np.ndarray, pos: np.ndarray, hw: np.ndarray, missing, pad) -> None:
        """``block[j, band]`` = the plane of file row ``pos[j]`` (row numbers within the group)
        of height and width ``hw[j, band]``, fitted to S x S (``pad`` around a smaller one);
        ``missing`` where the plane is NULL or the band is not in the file."""
        s = self.size
        p0 = int(pos[0])
        consecutive = int(pos[-1]) - p0 + 1 == len(pos) and bool((np.diff(pos) == 1).all())
        for bi, flat in enumerate(self.flat):
            h, w = int(hw[0, bi, 0]), int(hw[0, bi, 1])
            if flat is None or h * w != flat.shape[1] or not (hw[:, bi] == (h, w)).all():
                self._rows(block, bi, pos, hw, missing, pad)
                continue
            cube = flat.reshape(-1, h, w)
            target = block[:, bi]
            if (h, w) == (s, s) and consecutive:
                target[...] = cube[p0 : p0 + len(pos)]
            elif (h, w) == (s, s):
                np.take(cube, pos, axis=0, out=target)
            else:
                src, dst = _placement(h, w, s)
                if dst != (slice(0, s), slice(0, s)):
                    target[...] = pad
                picked = cube[p0 : p0 + len(pos)] if consecutive else cube[pos]
                target[:, dst[0], dst[1]] = picked[:, src[0], src[1]]

    def views(self, pos: np.ndarray, hw: np.ndarray, dtype) -> PlaneViews | None:
        """The planes of file rows ``pos`` (row numbers within the group) uncopied, when every
        band holds S x S planes of ``dtype`` for all of them; else None (gather them)."""
        s = self.size
        if np.dtype(self.view) != np.dtype(dtype) or not (hw == s).all():
            return None
        cubes = []
        for flat in self.flat:
            if flat is None or flat.shape[1] != s * s:
                return None
            cubes.append(flat.reshape(-1, s, s))
        return PlaneViews(cubes, pos)

    def _rows(self, block: np.ndarray, bi: int, pos: np.ndarray, hw, missing, pad) -> None:
        raw = self.raw[bi]
        s = self.size
        for j, p in enumerate(pos.tolist()):
            if raw is None or not raw[2][p]:
                block[j, bi] = missing
                continue
            offsets, data = raw[0], raw[1]
            h, w = int(hw[j, bi, 0]), int(hw[j, bi, 1])
            px = data[offsets[p] : offsets[p + 1]].view(self.view)
            if px.size != h * w:
                raise ExportError(
                    f"{self.where}: a stored plane holds {px.size} values where its height and "
                    f"width say {h}x{w}; the image table is damaged: ingest the object again."
                )
            src, dst = _placement(h, w, s)
            out = block[j, bi]
            if dst != (slice(0, s), slice(0, s)):
                out[...] = pad
            out[dst] = px.reshape(h, w)[src]


class BlockMaker:
    """Blocks of galaxy chunks of one plane, made in a worker thread in the order they are
    written (:meth:`blocks`), at most :data:`BLOCKS_AHEAD` blocks ahead of the writer. While
    the main thread writes catalog rows, or once a plane's last block is under way, the worker
    reads the first row groups (:data:`AHEAD_ROWS` rows; at least one group) of the plane
    written next (``ahead``); besides those, one row group is held: the one being gathered
    from."""

    def __init__(self, size: int, bands: list[str], plane_column: Callable[[str, str], str]):
        self.size, self.bands, self.column = size, bands, plane_column
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-export-blocks")
        self.buffers: dict[tuple[str, int], np.ndarray] = {}
        # Row groups read, by (file, plane, group); touched by the worker thread only.
        self.current: dict[tuple[Path, str, int], _Group] = {}
        self.ahead: dict[tuple[Path, str, int], _Group] = {}
        self.requested: tuple[Path, str] | None = None  # the last read ahead asked for

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.current.clear()
        self.ahead.clear()

    def _buffer(self, plane: str, i: int, dtype) -> np.ndarray:
        """Reused block buffers (fresh 20 MB arrays would fault in every page again)."""
        key = (plane, i % (BLOCKS_AHEAD + 1))
        if key not in self.buffers:
            shape = (BLOCK_ROWS, len(self.bands), self.size, self.size)
            self.buffers[key] = np.empty(shape, dtype)
        return self.buffers[key]

    def _read(self, part: PartitionFile, plane: str, g: int) -> _Group:
        columns = [
            self.column(b, plane) if self.column(b, plane) in part.names else None
            for b in self.bands
        ]
        wanted = [c for c in columns if c is not None]
        with readable(part.path):
            table = part.pf.read_row_group(g, columns=wanted, use_threads=False)
        view = "<i4" if plane == "mask" else "<f4"
        return _Group(table, columns, self.size, view, str(part.path))

    def _group(self, part: PartitionFile, plane: str, g: int) -> _Group:
        """Row group ``g`` of ``plane`` (read ahead, being used, or read now)."""
        key = (part.path, plane, g)
        group = self.current.get(key) or self.ahead.pop(key, None) or self._read(part, plane, g)
        self.current = {key: group}
        return group

    def read_ahead(self, path: Path, plane: str) -> None:
        """Read the first row groups of ``plane`` in the file ``path`` in the worker (once)."""
        if self.requested != (path, plane):
            self.requested = (path, plane)
            self.pool.submit(self._read_ahead, path, plane)

    def _read_ahead(self, path: Path, plane: str) -> None:
        part = PartitionFile(path)
        self.ahead = {}
        for g in range(len(part.starts) - 1):
            if g and part.starts[g] >= AHEAD_ROWS:
                break
            self.ahead[(path, plane, g)] = self._read(part, plane, g)

    def blocks(
        self,
        part: PartitionFile,
        plane: str,
        dtype,
        fill: tuple,
        rows: np.ndarray,
        pos: np.ndarray,
        hw: np.ndarray,
        ahead: tuple[Path, str] | None = None,
        into: Callable[[int, int], np.ndarray] | None = None,
        align: int | None = None,
        views: bool = False,
    ) -> Iterator[tuple[int, np.ndarray | PlaneViews]]:
        """``(first export row, block)`` of the export rows ``rows`` (ascending), held in the
        file rows ``pos`` with planes of heights and widths ``hw`` (rows, bands, 2), in order;
        ``fill``: (missing, pad) values. A block is valid until the next one is asked for.
        ``ahead``: the (file, plane) written next, whose first row group is read ahead.
        ``into(r0, r1)``: where export rows r0 .. r1-1 go (asked for in this thread), instead
        of the maker's buffers; ``align``: no block spans two of its blocks of rows. ``views``:
        a block whose rows are all S x S planes comes as those planes, uncopied
        (:class:`~warehouse.export.chunkfile.PlaneViews`), not gathered."""
        groups = part.group_of(pos)
        bounds = block_bounds(rows, groups, BLOCK_ROWS, align)

        def make(i: int, block: np.ndarray) -> np.ndarray | PlaneViews:
            a, b = bounds[i]
            g = int(groups[a])
            group = self._group(part, plane, g)
            at = pos[a:b] - part.starts[g]
            planes = group.views(at, hw[a:b], dtype) if views else None
            if planes is not None:
                return planes
            group.gather(block, at, hw[a:b], *fill)
            return block

        def submit(i: int) -> Future:
            a, b = bounds[i]
            if into is None:
                block = self._buffer(plane, i, dtype)[: b - a]
            else:
                block = into(int(rows[a]), int(rows[a]) + b - a)
            future = self.pool.submit(make, i, block)
            if i == len(bounds) - 1 and ahead is not None:
                self.read_ahead(*ahead)
            return future

        pending = [submit(i) for i in range(min(BLOCKS_AHEAD, len(bounds)))]
        for i, (a, _b) in enumerate(bounds):
            block = pending.pop(0).result()
            if i + BLOCKS_AHEAD < len(bounds):
                pending.append(submit(i + BLOCKS_AHEAD))
            yield int(rows[a]), block
