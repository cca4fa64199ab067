"""HATS margin catalogs: for every partition, a copy of the rows of the other partitions that lie
near its border, so cross-matches and cone searches are complete at partition edges.

The margin of a partition P (order k, pixel p) is found with HEALPix pixels of one *margin
order* M, the finest order whose pixels are at least twice ``threshold`` on average
(:func:`margin_order`). Seen at order M, P is a block of pixels; every row within ``threshold``
of P lies in P or in the ring of order-M neighbours around it (a pixel is at least half its
average size across, and the ring includes the diagonal neighbours; :func:`ring_count`).
The margin holds every row of that ring: all rows within ``threshold`` of P and some a little
farther (up to about four times the threshold), which never changes a cross-match result: the
extra rows are real neighbours, and each row of the other catalog is matched from one partition.

Only ``_healpix_29`` is needed to route a row (``_healpix_29 >> 2 * (29 - M)`` is its order-M
pixel): :class:`MarginIndex` maps order-M pixels to the partitions whose margin they feed, and
:class:`MarginBuilder` collects the rows of each partition as the primary catalog is written and
writes the margin catalog at the end.

>>> idx = MarginIndex([Partition(0, 4)], threshold_arcsec=10.0)
>>> idx.route(np.zeros(0, np.int64))
(array([], dtype=int64), array([], dtype=int64))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import healpy as hp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.damage import read_stored
from warehouse.healpix import SPATIAL_INDEX_COLUMN, SPATIAL_INDEX_ORDER, pixel_range, shift
from warehouse.store.versions import (
    Partition,
    TableSpec,
    link_or_copy,
    write_metadata_files,
    write_partition,
    write_properties,
)

COARSE_STEP = 4
"""Orders between the margin order and the coarse pixels that rule out most rows at once."""

__all__ = [
    "COARSE_STEP",
    "DEFAULT_MARGIN_ARCSEC",
    "MarginBuilder",
    "MarginIndex",
    "border_pixels",
    "margin_name",
    "margin_order",
    "ring_count",
]

DEFAULT_MARGIN_ARCSEC = 10.0
"""Larger than the 0.5" spec-z match radius and the 10" cone radius the benchmarks use; lsdb
refuses a cross-match radius larger than the margin, so raise it for wider matches."""


def _resolution_arcsec(order: int) -> float:
    """Square root of a pixel's area at ``order``, in arcsec."""
    return math.degrees(math.sqrt(4 * math.pi / (12 * 4**order))) * 3600.0


def margin_order(threshold_arcsec: float) -> int:
    """The finest order whose pixels are at least twice ``threshold_arcsec`` on average (so at
    least the threshold across, and one ring of neighbours holds the margin; max 29).

    >>> margin_order(10.0), margin_order(5.0)
    (13, 14)
    """
    if not threshold_arcsec > 0:
        raise ValueError(f"margin threshold must be > 0 arcsec, got {threshold_arcsec}")
    order = 0
    while order < SPATIAL_INDEX_ORDER and _resolution_arcsec(order + 1) >= 2 * threshold_arcsec:
        order += 1
    return order


def ring_count(order: int, threshold_arcsec: float) -> int:
    """Rings of order-``order`` neighbours that hold every point within the threshold: a pixel
    is at least half its average size across (HEALPix pixels are at worst ~1.6x longer than
    wide; 2 leaves room). One at :func:`margin_order`.

    >>> ring_count(margin_order(10.0), 10.0)
    1
    """
    return max(1, math.ceil(threshold_arcsec / (_resolution_arcsec(order) / 2)))


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Insert a zero bit above every bit of ``v`` (up to 32 bits): the NESTED interleave."""
    v = v.astype(np.uint64) & np.uint64(0xFFFFFFFF)
    for s, mask in (
        (16, 0x0000FFFF0000FFFF),
        (8, 0x00FF00FF00FF00FF),
        (4, 0x0F0F0F0F0F0F0F0F),
        (2, 0x3333333333333333),
        (1, 0x5555555555555555),
    ):
        v = (v | (v << np.uint64(s))) & np.uint64(mask)
    return v


def border_pixels(order: int, pixel: int, to_order: int) -> np.ndarray:
    """The order-``to_order`` pixels inside (order, pixel) that touch its edge, sorted.

    >>> border_pixels(0, 0, 1).tolist()
    [0, 1, 2, 3]
    """
    d = to_order - order
    if d < 0:
        raise ValueError(f"to_order {to_order} is coarser than the pixel's order {order}")
    n = 1 << d
    if n <= 2:
        local = np.arange(n * n, dtype=np.uint64)
    else:
        along = np.arange(n, dtype=np.uint64)
        ends = np.array([0, n - 1], dtype=np.uint64)
        x = np.concatenate([along, along, np.repeat(ends, n)])
        y = np.concatenate(
            [np.full(n, 0, np.uint64), np.full(n, n - 1, np.uint64), np.tile(along, 2)]
        )
        local = np.unique(_spread_bits(x) | (_spread_bits(y) << np.uint64(1)))
    return (np.int64(pixel) << np.int64(2 * d)) + local.astype(np.int64)


def _neighbours(order: int, pixels: np.ndarray) -> np.ndarray:
    out = hp.get_all_neighbours(2**order, pixels, nest=True).ravel()
    return np.unique(out[out >= 0]).astype(np.int64)


def candidate_pixels(part: Partition, order: int, rings: int) -> np.ndarray:
    """Order-``order`` pixels whose rows may lie within the margin of ``part`` (sorted)."""
    if part.order <= order:
        seeds = border_pixels(part.order, part.pixel, order)
        lo, hi = (
            part.pixel << 2 * (order - part.order),
            (part.pixel + 1) << 2 * (order - part.order),
        )
        found = seeds
        front = seeds
        for _ in range(rings):
            grown = _neighbours(order, front)
            grown = grown[(grown < lo) | (grown >= hi)]  # outside the partition only
            front = np.setdiff1d(grown, found, assume_unique=False)
            found = np.union1d(found, front)
        return found[(found < lo) | (found >= hi)]
    # A partition finer than the margin order: its order-M ancestor and the rings around it
    # (rows of the partition itself are left out by their _healpix_29 range).
    seed = np.array([part.pixel >> 2 * (part.order - order)], np.int64)
    found = seed
    for _ in range(rings):
        found = np.union1d(found, _neighbours(order, found))
    return found


class MarginIndex:
    """Routes rows to the margins of ``partitions``: which partitions' margins each row feeds.

    A row feeds the margin of every other partition that its order-M pixel or one of that
    pixel's eight neighbours touches (M = :func:`margin_order`; the same as "its pixel is in
    the ring around the partition", seen from the row). Most rows are far from any border: a
    row whose coarse pixel (order M - :data:`COARSE_STEP`) and that pixel's neighbours all lie
    in the row's own partition feeds no margin, and only the others are looked at closely.
    """

    def __init__(self, partitions: Sequence[Partition], threshold_arcsec: float):
        self.partitions = list(partitions)
        self.threshold = float(threshold_arcsec)
        self.order = margin_order(self.threshold)
        if ring_count(self.order, self.threshold) != 1:  # margin_order guarantees one ring
            raise AssertionError("the margin order must need one ring of neighbours")
        bounds = sorted((*pixel_range(p.order, p.pixel), i) for i, p in enumerate(self.partitions))
        self._lo = np.array([b[0] for b in bounds], np.int64)
        self._hi = np.array([b[1] for b in bounds], np.int64)
        self._index = np.array([b[2] for b in bounds], np.int64)  # sorted position -> partition

    def _touching(self, order: int, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and last (sorted) partition overlapping each pixel; last < first: none."""
        s = np.int64(shift(order))
        first = np.searchsorted(self._hi, pixels << s, "right")
        last = np.searchsorted(self._lo, (pixels + 1) << s, "left") - 1
        return first, last

    def route(self, h29: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row index, partition index) pairs: row ``i`` of ``h29`` belongs to the margin of
        partition ``j`` (never to that of the partition that holds it)."""
        h29 = np.asarray(h29, np.int64)
        none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        if h29.size == 0 or not self.partitions:
            return none
        own = np.searchsorted(self._lo, h29, "right") - 1  # sorted position of its partition
        # 1. coarse pixels whose neighbourhood lies in one partition hold no margin rows
        coarse = max(0, self.order - COARSE_STEP)
        cpix, inverse, first_row = _groups(h29 >> np.int64(shift(coarse)))
        near = np.zeros(cpix.size, bool)
        cown = own[first_row]
        first, last = self._touching(coarse, cpix)
        near |= (first != cown) | (last != cown)
        nb = hp.get_all_neighbours(2**coarse, cpix, nest=True)
        for k in range(nb.shape[0]):
            valid = nb[k] >= 0
            f, la = self._touching(coarse, np.where(valid, nb[k], 0))
            near |= valid & (la >= f) & ((f != cown) | (la != cown))
        rows = np.flatnonzero(near[inverse])
        if rows.size == 0:
            return none
        # 2. the rows there: every partition their order-M pixel and its neighbours touch
        pix = h29[rows] >> np.int64(shift(self.order))
        fine = hp.get_all_neighbours(2**self.order, pix, nest=True)
        cand_rows, cand_pos = [], []
        for column in [pix, *fine]:
            valid = column >= 0
            f, la = self._touching(self.order, np.where(valid, column, 0))
            span = np.where(valid, la - f + 1, 0).clip(0)
            for step in range(int(span.max(initial=0))):
                take = span > step
                cand_rows.append(np.flatnonzero(take))
                cand_pos.append(f[take] + step)
        r = np.concatenate(cand_rows)
        pos = np.concatenate(cand_pos)
        keep = pos != own[rows][r]
        pairs = np.unique(np.stack([r[keep], pos[keep]]), axis=1)
        return rows[pairs[0]].astype(np.int64), self._index[pairs[1]]


def _groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(values, return_index=True, return_inverse=True)`` as (unique values, inverse,
    first row of each value); rows sorted by position (a partition's, as tasks route them) are
    grouped by their boundaries, without sorting them again."""
    if values.size > 1 and bool(np.all(values[1:] >= values[:-1])):
        starts = np.flatnonzero(values[1:] != values[:-1]) + 1
        first = np.concatenate([np.zeros(1, np.int64), starts])
        inverse = np.zeros(values.size, np.int64)
        inverse[starts] = 1
        return values[first], np.cumsum(inverse), first
    unique, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    return unique, inverse, first


def margin_name(table: str, threshold_arcsec: float) -> str:
    """Folder (and ``obs_collection``) of a table's margin: ``<table>_<N>arcs``, as hats-import
    names them.

    >>> margin_name("hsc_forced", 10.0), margin_name("t", 2.5)
    ('hsc_forced_10arcs', 't_2.5arcs')
    """
    return f"{table}_{threshold_arcsec:g}arcs"


class MarginBuilder:
    """Collects margin rows while the primary partitions are written, then writes the margin.

    Feed it every partition of the new catalog exactly once (:meth:`add`, rows of one partition
    or any part of the table); :meth:`write` writes ``dest`` as a HATS margin catalog whose
    partitions are named by the primary partitions they serve. Margins hold a few percent of
    the rows, so they are kept in memory.
    """

    def __init__(self, partitions: Sequence[Partition], threshold_arcsec: float):
        self.index = MarginIndex(partitions, threshold_arcsec)
        self._pieces: dict[int, list[pa.Table]] = {}
        self._linked: dict[int, Path] = {}
        self._previous: dict[int, Path] = {}
        self.fresh: set[int] = set()  # partitions that got rows from add()
        self.nbytes = 0

    def add(self, table: pa.Table, only: set[int] | None = None) -> None:
        """Route the rows of ``table`` (any rows of the catalog) to the margins they feed;
        ``only``: just to these partitions (indices into the layout)."""
        if table.num_rows == 0:
            return
        h29 = table.column(SPATIAL_INDEX_COLUMN).to_numpy()
        rows, targets = self.index.route(h29)
        if only is not None:
            wanted = np.isin(targets, np.fromiter(only, np.int64, len(only)))
            rows, targets = rows[wanted], targets[wanted]
        if rows.size == 0:
            return
        order_ = np.argsort(targets, kind="stable")
        rows, targets = rows[order_], targets[order_]
        self.add_routed(table.take(pa.array(rows)), targets)

    def add_routed(self, taken: pa.Table, targets: np.ndarray) -> None:
        """Rows already routed: row ``i`` of ``taken`` feeds the margin of partition
        ``targets[i]`` (``targets`` sorted, e.g. from a partition task's margin file)."""
        if targets.size == 0:
            return
        cuts = np.flatnonzero(np.diff(targets)) + 1
        for start, end in zip(
            np.concatenate([[0], cuts]), np.concatenate([cuts, [targets.size]]), strict=True
        ):
            piece = taken.slice(int(start), int(end - start))
            self._pieces.setdefault(int(targets[start]), []).append(piece)
            self.fresh.add(int(targets[start]))
            self.nbytes += piece.nbytes

    def add_to(self, index: int, rows: pa.Table) -> None:
        """Rows known to belong to the margin of partition ``index`` (e.g. from an old margin)."""
        if rows.num_rows:
            self._pieces.setdefault(index, []).append(rows)
            self.nbytes += rows.nbytes

    def previous(self, index: int, old_file: Path) -> None:
        """The old margin file of partition ``index``: linked instead of rewritten when the new
        margin has the same rows, so versions share unchanged margin files too."""
        self._previous[index] = Path(old_file)

    def link(self, index: int, old_file: Path) -> None:
        """The margin of partition ``index`` is ``old_file`` unchanged (a hard link)."""
        self._linked[index] = Path(old_file)

    def write(
        self,
        dest: Path,
        spec: TableSpec,
        schema: pa.Schema,
        primary_url: str,
        max_rows: int,
    ) -> int:
        """Write the margin catalog into ``dest``; returns its row count."""
        dest = Path(dest)
        written: list[tuple[Partition, Path]] = []
        nrows = 0
        sort_keys = [(SPATIAL_INDEX_COLUMN, "ascending")] + [(k, "ascending") for k in spec.key]
        parts = self.index.partitions
        for i in sorted(
            set(self._pieces) | set(self._linked), key=lambda j: (parts[j].order, parts[j].pixel)
        ):
            part = parts[i]
            target = dest / part.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            if i in self._linked:
                link_or_copy(self._linked[i], target)
                written.append((part, target))
                nrows += pq.read_metadata(target).num_rows
                continue
            pieces = [p.select(schema.names).cast(schema) for p in self._pieces[i]]
            table = pa.concat_tables(pieces).sort_by(sort_keys)
            old = self._previous.get(i)
            if old is not None and pq.read_metadata(old).num_rows == table.num_rows:
                if read_stored(old, schema=schema).equals(table):
                    link_or_copy(old, target)
                    written.append((part, target))
                    nrows += table.num_rows
                    continue
            write_partition(table, target, spec.layout)
            written.append((part, target))
            nrows += table.num_rows
        write_metadata_files(dest, schema, written)
        write_properties(
            dest,
            spec,
            nrows,
            [p for p, _ in written],
            max_rows,
            name=margin_name(spec.name, self.index.threshold),
            extra={
                "dataproduct_type": "margin",
                "hats_primary_table_url": primary_url,
                "hats_margin_threshold": f"{self.index.threshold:g}",
            },
        )
        return nrows
