"""Crop or pad cutouts to a common size about the centre pixel (object on index ``n // 2``)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["FitResult", "fit_to_size"]


class FitResult(NamedTuple):
    """Result of :func:`fit_to_size`.

    ``array`` is the new array, ``action`` one of ``'none'``, ``'cropped'``,
    ``'padded'``, ``'cropped+padded'``, and ``offset`` the per-axis shift
    ``(dy, dx)`` of the last two axes: input index ``j`` lands on output index
    ``j + offset``.
    """

    array: np.ndarray
    action: str
    offset: tuple[int, int]


def fit_to_size(array: np.ndarray, size: int, fill: float | int = 0) -> FitResult:
    """Crop or pad the last two axes to ``size x size`` about the centre pixel.

    Centre convention: on an axis of length ``n`` the object is on index
    ``n // 2``; it lands on index ``size // 2`` of the output, so the shift per
    axis is ``offset = size // 2 - n // 2``. Examples: 119 -> 127 pads 4 pixels
    on each side; 180 -> 127 keeps input rows 27..153; 179 -> 127 keeps 26..152;
    64 -> 127 pads 31 before and 32 after. Kept pixels are copied unchanged and
    the dtype is kept; new pixels take ``fill``.

    Parameters
    ----------
    array : numpy.ndarray
        (..., H, W), e.g. one band (H, W) or all bands (B, H, W).
    size : int
        Output height and width.
    fill : scalar
        Value of padded pixels (0 by default; NaN or a NO_DATA mask bit are
        alternatives the caller may prefer).

    Returns
    -------
    FitResult
        ``(array, action, offset)``.

    Examples
    --------
    >>> out, action, offset = fit_to_size(np.ones((119, 119)), 127)
    >>> out.shape, action, offset
    ((127, 127), 'padded', (4, 4))
    """
    arr = np.asarray(array)
    if arr.ndim < 2:
        raise ValueError(f"array must have at least 2 dimensions, got shape {arr.shape}")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    size = int(size)
    lead = arr.shape[:-2]
    out = np.full((*lead, size, size), fill, dtype=arr.dtype)
    src: list[slice] = []
    dst: list[slice] = []
    offsets: list[int] = []
    cropped = padded = False
    for n in arr.shape[-2:]:
        off = size // 2 - n // 2
        lo, hi = max(0, -off), min(n, size - off)  # kept input range
        src.append(slice(lo, hi))
        dst.append(slice(lo + off, hi + off))
        offsets.append(off)
        cropped |= lo > 0 or hi < n
        padded |= lo + off > 0 or hi + off < size
    out[..., dst[0], dst[1]] = arr[..., src[0], src[1]]
    action = {
        (False, False): "none",
        (True, False): "cropped",
        (False, True): "padded",
        (True, True): "cropped+padded",
    }[(cropped, padded)]
    return FitResult(out, action, (offsets[0], offsets[1]))
