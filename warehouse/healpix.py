"""HEALPix NESTED pixel arithmetic at order 29, the spatial index of every table.

``_healpix_29`` is ``ang2pix(2**29, ra, dec, nest=True, lonlat=True)``; the pixel of a row at a
coarser order k is ``_healpix_29 >> (2 * (29 - k))``, so partitioning needs no trigonometry.
"""

from __future__ import annotations

import healpy as hp
import numpy as np

SPATIAL_INDEX_ORDER = 29
SPATIAL_INDEX_COLUMN = "_healpix_29"


def shift(order: int) -> int:
    """Bits to drop from ``_healpix_29`` to get the pixel at ``order``."""
    return 2 * (SPATIAL_INDEX_ORDER - order)


def spatial_index(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """The order-29 NESTED pixel of each (ra, dec) in degrees, as int64.

    >>> int(spatial_index(np.array([0.0]), np.array([90.0]))[0]) >= 0
    True
    """
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    if ra.size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.signbit(ra).any() or (ra >= 360.0).any():  # else np.mod changes nothing (20 ms/2 M)
        ra = np.mod(ra, 360.0)
    pix = hp.ang2pix(2**SPATIAL_INDEX_ORDER, ra, dec, nest=True, lonlat=True)
    return np.asarray(pix, dtype=np.int64)


def pixel_range(order: int, pixel: int) -> tuple[int, int]:
    """Half-open ``[lo, hi)`` range of ``_healpix_29`` values inside (order, pixel)."""
    s = shift(order)
    return int(pixel) << s, (int(pixel) + 1) << s


def directory_of(pixel: int) -> int:
    """HATS ``Dir=`` value of a pixel."""
    return (int(pixel) // 10_000) * 10_000


def cone_pixel_ranges(
    ra: float, dec: float, radius_arcsec: float, order: int | None = None
) -> list[tuple[int, int]]:
    """``_healpix_29`` ranges covering every pixel that touches the cone (inclusive query).

    The pixels are chosen at an order whose pixels are about the size of the cone, so the
    ranges are few and cover little more than the cone. Every row inside the cone lies in one
    of the ranges, whatever partition it sits in: exact at partition borders.
    """
    radius = np.radians(radius_arcsec / 3600.0)
    if order is None:
        # pixel size at order k is about sqrt(4 pi / (12 * 4**k)) radians
        order = 0
        while order < 18:
            size = np.sqrt(4 * np.pi / (12 * 4 ** (order + 1)))
            if size < radius:
                break
            order += 1
    vec = hp.ang2vec(np.mod(ra, 360.0), dec, lonlat=True)
    pixels = np.sort(hp.query_disc(2**order, vec, radius, inclusive=True, nest=True, fact=4))
    ranges: list[tuple[int, int]] = []
    for p in pixels.tolist():
        lo, hi = pixel_range(order, p)
        if ranges and ranges[-1][1] == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges


def angular_separation_deg(
    ra1: np.ndarray, dec1: np.ndarray, ra2: float, dec2: float
) -> np.ndarray:
    """Great-circle distance in degrees (haversine: accurate at small separations)."""
    r1, d1, r2, d2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))
