"""Pixels on their way from the image table to the export: band planes of a partition file
viewed without copies, gathered into one chunk per galaxy (bands, S, S), and the centred
crop or padding that fits a stored plane into S x S."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from warehouse.cutouts import fit_action_of
from warehouse.export.columns import _view, to_numpy
from warehouse.images.fit import fit_to_size


@functools.lru_cache(maxsize=4096)
def _placement(h: int, w: int, size: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(source, destination) slices doing what :func:`fit_to_size` does to an (h, w) plane: input
    index j lands on j + offset, the offset fit_to_size reports."""
    dy, dx = fit_to_size(np.zeros((h, w), np.int8), size).offset
    src, dst = [], []
    for n, off in ((h, dy), (w, dx)):
        lo, hi = max(0, -off), min(n, size - off)
        src.append(slice(lo, hi))
        dst.append(slice(lo + off, hi + off))
    return (src[0], src[1]), (dst[0], dst[1])


def fit_actions(
    heights: list[np.ndarray], widths: list[np.ndarray], valid: list[np.ndarray], size: int
) -> tuple[np.ndarray, dict[str, int]]:
    """Each row's fit action (:func:`fit_action_of` of the (H, W) of its bands with an image,
    ``"missing"`` with none), worked out once per distinct set of shapes, as an object array;
    and how many rows have each action."""
    n = len(heights[0]) if heights else 0
    if not heights or n == 0:
        return np.full(n, "missing", dtype=object), ({"missing": n} if n else {})
    shapes = np.stack(
        [np.where(v, h, -1) for h, v in zip(heights, valid, strict=True)]
        + [np.where(v, w, -1) for w, v in zip(widths, valid, strict=True)],
        axis=1,
    )  # -1: the band has no image (a height is never negative)
    distinct, inverse = np.unique(shapes, axis=0, return_inverse=True)
    inverse = inverse.reshape(n)
    nb = len(heights)
    actions = []
    for row in distinct.tolist():
        held = tuple((h, w) for h, w in zip(row[:nb], row[nb:], strict=True) if h >= 0)
        actions.append(fit_action_of(held, size) if held else "missing")
    counts: dict[str, int] = {}
    for k, count in enumerate(np.bincount(inverse, minlength=len(actions)).tolist()):
        counts[actions[k]] = counts.get(actions[k], 0) + count
    return np.array(actions, dtype=object)[inverse], counts


def _cubes(views: dict, bands, size: int, view: str) -> list[np.ndarray] | None:
    """Each band's pixels as one (rows, S, S) array over the file's bytes (no copy), when every
    row of the file holds an S x S image of every band; else None (the per-row path)."""
    nbytes = size * size * 4
    cubes = []
    for b in bands:
        offsets, data, valid = views[b]
        if not valid.all() or not (np.diff(offsets) == nbytes).all():
            return None
        raw = data[offsets[0] : offsets[-1]]
        cubes.append(raw.view(view).reshape(len(offsets) - 1, size, size))
    return cubes


def _gather(block: np.ndarray, cubes: list[np.ndarray], pos: np.ndarray) -> np.ndarray:
    """``block[j, band] = cubes[band][pos[j]]``: galaxy chunks from band planes, one copy."""
    p0 = int(pos[0])
    if int(pos[-1]) - p0 + 1 == len(pos) and bool((np.diff(pos) == 1).all()):
        for bi, cube in enumerate(cubes):
            block[:, bi] = cube[p0 : p0 + len(pos)]
    else:  # rows scattered in the file (a split): row by row, no temporary
        for j, p in enumerate(pos.tolist()):
            for bi, cube in enumerate(cubes):
                block[j, bi] = cube[p]
    return block


def _one_chunk(col: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as it is (``combine_chunks`` copies even one)."""
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def _valid(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Where ``col`` is not NULL, as a bool array."""
    arr = _one_chunk(col) if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count == 0:
        return np.ones(len(arr), bool)
    return to_numpy(arr.is_valid())


def _int_or_zero(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An integer column's values with 0 at NULLs (``fill_null(0)`` builds a pyarrow scalar
    from a Python int, which imports pandas: a third of a second in a fresh process)."""
    arr = _one_chunk(col) if isinstance(col, pa.ChunkedArray) else col
    values = _view(arr)
    return values if arr.null_count == 0 else np.where(_valid(arr), values, 0)


def _binary_view(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets, bytes and validity of a binary array, without copying the bytes."""
    if not pa.types.is_binary(arr.type):
        arr = arr.cast(pa.binary())
    validity, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    valid = to_numpy(arr.is_valid())
    del validity
    return off, raw, valid


def _runs(rows: np.ndarray, block: int, align: int | None = None) -> Iterator[tuple[int, int]]:
    """[a, b) index ranges of ``rows`` that are consecutive integers, at most ``block`` long;
    with ``align``, none holds rows of two row groups of ``align`` rows."""
    if rows.size == 0:
        return
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [rows.size]])
    for s, e in zip(starts.tolist(), stops.tolist(), strict=True):
        a = s
        while a < e:
            b = min(a + block, e)
            if align:
                b = min(b, a + align - int(rows[a]) % align)
            yield a, b
            a = b
