"""The first image partition of an export, made ready while the export is planned.

The rows of an export are known only once DuckDB has joined and sorted them (the plan), but
the partition its first image rows most likely come from is the image table's first in sky
order (every row, or a query over the whole sky). Its file's footer, its object ids and
cutout shapes and where each stored image plane lies in it (pages.py) are read in a thread of
their own while DuckDB plans without the GIL, so the writer thread can start copying as soon
as the rows are known. Nothing here decides anything: what it read is used only when the
export's first partition is this one, and a file it could not read is read again, and its
error reported, where the export reads it.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

from warehouse.cutouts import band_column
from warehouse.export.blocks import PartitionFile
from warehouse.export.pages import plane_offsets

FIRST_PLANE = "image"  # written first (options.PLANES' order)
STORED = np.dtype("<f4")  # an image plane as stored and exported


def shape_columns(bands, names: set[str]) -> list[str]:
    """The height and width columns of ``bands`` a partition file holds (``names``)."""
    return [
        band_column(b, w) for b in bands for w in ("height", "width") if band_column(b, w) in names
    ]


def first_path(cv) -> Path | None:
    """The image table version ``cv``'s first partition file in sky order (None: none)."""
    if not cv.partitions:
        return None
    return cv.path / min(cv.partitions, key=lambda p: p.h29_range()).relpath


class EarlyPartition:
    """Partition file ``path`` read in a thread: the file, its object ids and cutout shapes
    (``meta``), and the offsets of the S x S image planes of ``bands`` (None where not stored
    so)."""

    def __init__(self, path: Path, bands, size: int) -> None:
        self.path = path
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-export-first")
        try:
            self.future: Future | None = pool.submit(self._read, tuple(bands), size)
        finally:
            pool.shutdown(wait=False)

    def _read(self, bands, size: int):
        try:
            part = PartitionFile(self.path)
            meta = part.pf.read(
                columns=["object_id", *shape_columns(bands, part.names)], use_threads=False
            )
            columns = [band_column(b, FIRST_PLANE) for b in bands]
            found = None
            if set(columns) <= part.names:
                nbytes = size * size * STORED.itemsize
                found = plane_offsets(part.pf, part.mapped(), columns, nbytes)
            return part, meta, found
        except Exception:  # read again where the export reads it, which reports the error
            return None

    def get(self, path: Path) -> tuple[PartitionFile, pa.Table, dict | None] | None:
        """What was read, when ``path`` is this partition's file and it could be read (and
        :meth:`drop` was not called)."""
        if path != self.path or self.future is None:
            return None
        return self.future.result()

    def drop(self) -> None:
        """Forget what was read (its memory map closes with the last user's reference)."""
        if self.future is not None:
            self.future.result()  # the thread done with the file
            self.future = None
