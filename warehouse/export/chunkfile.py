"""Uncompressed image datasets of an HDF5 export written by file offset.

Each image plane is one dataset of galaxy chunks (1, bands, S, S) with no filter. Its chunks are
allocated when the dataset is created (HDF5's early allocation, the fill never written by HDF5,
so creating them costs no pass over the file), their file offsets are read once, and every
galaxy's bytes are written at its chunk's offset with ``os.pwritev`` on a descriptor of our own:
the band planes straight from the row groups read (no gather into a chunk first), without the
GIL. A partition's blocks are taken from the block maker (:mod:`warehouse.export.blocks`) and
written by a writer thread of their own, partition after partition, while the main thread goes
on with the catalog rows (one writer: the kernel serialises buffered writes to one file).
HDF5 keeps no raw data of these datasets in memory and writes
nothing into allocated chunk space, so the file it closes holds our bytes; chunks no row wrote
(objects without a cutout, planes a partition lacks) get the dataset's fill value at the end
(:meth:`ChunkFile.finish`), as HDF5 would have read them.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from warehouse.errors import ExportError
from warehouse.export.pages import lengths_match

_madvise: Any
try:  # the C library's madvise, called without the GIL
    _madvise = ctypes.CDLL(None, use_errno=True).madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _madvise.restype = ctypes.c_int
except (OSError, AttributeError, TypeError):  # pragma: no cover - not POSIX
    _madvise = None

try:  # POSIX: the largest file this process may write (``ulimit -f``)
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

MADV_POPULATE_READ = 22  # Linux >= 5.14: fault a mapping's pages in at once (else ignored)
RUN_GAP = 1 << 16  # planes closer than this in a partition file are read ahead as one range
READ_AHEAD = 1  # partitions whose pages are mapped ahead of the one being copied


@dataclass
class PlaneViews:
    """Rows of a block as each band's plane of them, uncopied: ``cubes[band][pos[j]]`` is the
    (S, S) plane of the block's row j."""

    cubes: list[np.ndarray]
    pos: np.ndarray

    def __len__(self) -> int:
        return len(self.pos)


class ChunkFile:
    """The image datasets of one HDF5 file under construction, written by chunk offset."""

    def __init__(self, h5: h5py.File) -> None:
        self.h5 = h5
        self.path = h5.filename
        self.offsets: dict[str, np.ndarray] = {}
        self.written: dict[str, np.ndarray] = {}
        self.fills: dict[str, np.ndarray] = {}
        self.fd: int | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.pending: deque[Future] = deque()  # partitions queued for the writer thread
        # [map, byte ranges, read ahead (a Future) or None] of the mapped partitions queued
        self.ahead: deque[list] = deque()
        self.lock = threading.Lock()
        self.reader: ThreadPoolExecutor | None = None
        self.stopping = False
        self.reserved = 0  # bytes of the chunks allocated so far, to be written

    def create(self, name: str, shape: tuple[int, ...], dtype, fillvalue) -> h5py.Dataset:
        """Dataset ``name`` of ``shape`` (rows, bands, S, S) in chunks of one row, every chunk
        allocated now; its chunks' offsets read."""
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)  # the fill is ours to write (finish)
        dset = self.h5.create_dataset(
            name,
            shape=shape,
            dtype=dtype,
            chunks=(1, *shape[1:]),
            fillvalue=fillvalue,
            track_times=False,
            dcpl=dcpl,
        )
        n = shape[0]
        nbytes = int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
        self.offsets[name] = _chunk_offsets(dset, n, nbytes)
        self.reserved += n * nbytes
        end = int(self.offsets[name].max()) + nbytes if n else 0
        _check_room(self.path, self.reserved, end)
        self.written[name] = np.zeros(n, bool)
        self.fills[name] = np.full(shape[1:], fillvalue, dtype)
        return dset

    def open(self) -> None:
        """Our descriptor of the file and the writer thread (once the datasets exist)."""
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY)
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-export-write")

    def write(self, name: str, r0: int, rows: np.ndarray | PlaneViews) -> None:
        """Rows ``r0 ..`` of dataset ``name`` now: a block (rows, bands, S, S) of the dataset's
        dtype, or the rows' band planes (:class:`PlaneViews`)."""
        self.open()
        self._rows(name, r0, rows)

    def write_blocks(self, name: str, blocks: Iterable[tuple[int, np.ndarray | PlaneViews]]):
        """The ``(first row, rows)`` of ``blocks`` (a block maker's, taken in the writer thread,
        after the partitions queued before) into dataset ``name``; returns at once. Errors are
        raised by a later :meth:`wait`."""
        self.open()
        assert self.pool is not None
        self._collect()
        self.pending.append(self.pool.submit(self._drain, name, blocks))

    def write_mapped(
        self, name: str, rows: np.ndarray, src: np.ndarray, buf, nbytes: int, where: str
    ) -> None:
        """Export rows ``rows`` of dataset ``name`` from ``buf`` (the memory map of the
        partition file ``where``): row ``rows[j]``'s band planes are the ``nbytes`` at
        ``src[j]`` (one offset per band, each after its stored length); written in the writer
        thread, after the partitions queued before."""
        self.open()
        assert self.pool is not None
        self._collect()
        with self.lock:
            self.ahead.append([buf, byte_ranges(src, nbytes), None])
        self._read_ahead()
        job = (name, rows, src, [buf], nbytes, where)
        self.pending.append(self.pool.submit(self._mapped, *job))

    def _mapped(
        self, name: str, rows, src: np.ndarray, held: list, nbytes: int, where: str
    ) -> None:
        buf = held.pop()  # ours now, to be let go of in the map thread (_let_go)
        with self.lock:  # its pages are being mapped, ahead of the copy (not waited for)
            if self.ahead:
                self.ahead.popleft()
        self._read_ahead()
        try:
            self._copy(name, rows, src, buf, nbytes, where)
        finally:
            self._let_go(buf)

    def _let_go(self, buf) -> None:
        """Drop our reference to the map ``buf`` in the map thread: when it is the last one,
        unmapping the partition's pages takes 4-8 ms, which the writer would wait between
        partitions (65 ms of a 0.8 s export of 5,000 galaxies)."""
        with self.lock:
            reader = None if self.stopping else self.reader
            if reader is not None:
                with contextlib.suppress(RuntimeError):  # shut down meanwhile: dropped here
                    reader.submit(_dropped, buf)

    def _copy(self, name: str, rows, src: np.ndarray, buf, nbytes: int, where: str) -> None:
        if not lengths_match(buf, src.ravel(), nbytes):
            raise ExportError(
                f"{where}: a stored plane is not {nbytes} bytes where its height and width say "
                "so; the image table is damaged: ingest the objects again."
            )
        view = memoryview(buf)
        try:
            starts = src.tolist()
            self._runs(name, rows, lambda j: [view[o : o + nbytes] for o in starts[j]])
        finally:
            view.release()

    def _read_ahead(self) -> None:
        """Map the pages of the next :data:`READ_AHEAD` queued partitions in a thread of its own
        (``MADV_POPULATE_READ``: read from disk where they left the page cache), ahead of the
        writer's copy, which follows without waiting: a store's pages may be gone (the kernel
        drops pages of files unread for a while, and under other jobs' I/O), and read fault by
        fault in the copy, 1.6 GB took 2-2.7 s against 1 s from memory."""
        with self.lock:
            for entry in list(self.ahead)[:READ_AHEAD]:
                if entry[2] is None and not self.stopping:
                    if self.reader is None:
                        self.reader = ThreadPoolExecutor(1, thread_name_prefix="gwh-export-map")
                    entry[2] = self.reader.submit(_advise, entry[0], entry[1], MADV_POPULATE_READ)

    def _collect(self) -> None:
        """Forget the partitions written (their errors raised now, their memory freed)."""
        done = [f for f in self.pending if f.done()]
        for future in done:
            self.pending.remove(future)
            future.result()

    def _drain(self, name: str, blocks: Iterable[tuple[int, np.ndarray | PlaneViews]]) -> None:
        for r0, rows in blocks:
            if self.stopping:
                return
            self._rows(name, r0, rows)

    def wait_below(self, queued: int) -> None:
        """Until fewer than ``queued`` partitions wait for the writer thread (their errors
        raised here): the next partition is read that far ahead of the copy and no further,
        so memory holds a few partitions' pages, whatever the export's size."""
        self._collect()
        while len(self.pending) >= queued:
            self.pending.popleft().result()

    def wait(self) -> None:
        """Until every queued partition is written (the writer's first error raised here)."""
        while self.pending:
            self.pending.popleft().result()

    def _rows(self, name: str, r0: int, rows: np.ndarray | PlaneViews) -> None:
        export_rows = np.arange(r0, r0 + len(rows))
        if isinstance(rows, PlaneViews):
            pos, cubes = rows.pos, rows.cubes
            self._runs(name, export_rows, lambda j: [cube[pos[j]] for cube in cubes])
        else:
            self._runs(name, export_rows, lambda j: [rows[j]])

    def _runs(self, name: str, rows: np.ndarray, buffers: Callable[[int], list]) -> None:
        """Export rows ``rows`` of ``name``, row ``rows[j]``'s chunk being the concatenation of
        ``buffers(j)``: one ``pwritev`` per chunk (calls spanning many chunks took 2-3 times as
        long now and then on the machine measured)."""
        for j, at in enumerate(self.offsets[name][rows].tolist()):
            if self.stopping:
                return
            self._put(buffers(j), at)
        self.written[name][rows] = True

    def _put(self, buffers: Sequence, offset: int) -> None:
        assert self.fd is not None
        want = sum(memoryview(b).nbytes for b in buffers)
        try:
            done = os.pwritev(self.fd, buffers, offset)
            if done < want:  # a short write: the rest, byte by byte from where it stopped
                rest = b"".join(bytes(memoryview(b).cast("B")) for b in buffers)[done:]
                while rest:
                    n = os.pwrite(self.fd, rest, offset + done)
                    done, rest = done + n, rest[n:]
        except OSError as exc:
            raise ExportError(
                f"{self.path}: writing image chunks failed ({exc.strerror}); free disk space "
                "or choose another --out, then export again."
            ) from None

    def finish(self) -> None:
        """The fill value into every chunk no row wrote, and our descriptor closed."""
        self.open()
        self.wait()
        for name, written in self.written.items():
            fill = [self.fills[name]]

            def same(j: int, fill: list = fill) -> list:
                return fill

            self._runs(name, np.flatnonzero(~written), same)
        self.close()

    def close(self) -> None:
        """Stop writing (after an error: queued partitions are dropped) and close our
        descriptor."""
        self.stopping = True
        for future in self.pending:
            future.cancel()
        self.pending.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        with self.lock:
            self.ahead.clear()
            reader, self.reader = self.reader, None
        if reader is not None:
            reader.shutdown(wait=True, cancel_futures=True)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def byte_ranges(src: np.ndarray, nbytes: int, gap: int = RUN_GAP) -> list[tuple[int, int]]:
    """The (start, length) ranges of a file, starting on a page, that hold the values at
    ``src`` (``nbytes`` each, after their 4-byte length), values less than ``gap`` apart in
    one range: what a partition's copy reads."""
    if not src.size:
        return []
    starts = np.sort(src.ravel()) - 4
    ends = starts + 4 + nbytes
    cut = np.flatnonzero(starts[1:] - ends[:-1] > gap) + 1
    first = starts[np.concatenate([[0], cut])] // mmap.PAGESIZE * mmap.PAGESIZE
    last = ends[np.concatenate([cut - 1, [len(ends) - 1]])]
    return list(zip(first.tolist(), (last - first).tolist(), strict=True))


def _advise(buf, ranges: list[tuple[int, int]], advice: int) -> None:
    """``madvise`` of each range of the memory map ``buf``, a hint only (an older kernel
    without MADV_POPULATE_READ fails it, ignored), without the GIL: ``mmap.madvise`` holds it
    for the whole call, and mapping a partition's pages took 20 ms from memory and 160 ms from
    disk, with every other thread of the export stopped meanwhile."""
    if _madvise is None or not ranges:
        return
    start = np.frombuffer(buf, np.uint8).ctypes.data
    for offset, length in ranges:
        _madvise(start + offset, length, advice)  # ctypes lets the GIL go


def _dropped(_buf) -> None:
    """Nothing: the map thread's job holding the last reference to a map (:meth:`_let_go`)."""


def _check_room(path: str, need: int, end: int) -> None:
    """Refuse, before a byte is written, an export whose image chunks (``need`` bytes, the
    file reaching ``end``) cannot fit: a full disk met halfway through costs the time of the
    writes and fails inside HDF5 (whose last flush then fails too)."""
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    if need > free:
        raise ExportError(
            f"{path}: the images need {_size(need)} and its file system has {_size(free)} free; "
            "free disk space or choose another --out, then export again."
        )
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else -1
    if limit not in (-1, getattr(resource, "RLIM_INFINITY", -1)) and end > limit:
        raise ExportError(
            f"{path}: the file would grow to {_size(end)} and this process may write files of at "
            f"most {_size(limit)} (ulimit -f); raise the limit, or export fewer rows (--limit) "
            "or a smaller --size."
        )


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _chunk_offsets(dset: h5py.Dataset, n: int, nbytes: int) -> np.ndarray:
    """The file offset of each row's chunk of ``dset`` (all allocated, unfiltered, ``nbytes``)."""
    offsets = np.full(n, -1, np.int64)
    sizes = np.zeros(n, np.int64)

    def seen(info) -> None:
        row = info.chunk_offset[0]
        offsets[row], sizes[row] = info.byte_offset, info.size

    try:
        dset.id.chunk_iter(seen)
    except (AttributeError, NotImplementedError):  # HDF5 < 1.14: one call per chunk
        for i in range(dset.id.get_num_chunks()):
            seen(dset.id.get_chunk_info(i))
    if n and ((offsets < 0).any() or (sizes != nbytes).any()):  # pragma: no cover - HDF5 bug
        raise ExportError(f"{dset.file.filename}: HDF5 did not allocate every chunk of {dset.name}")
    return offsets
