"""HSC coadd mask planes: names and bits, the planes that mark bad flux, masked fractions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from warehouse.errors import CutoutError

if TYPE_CHECKING:
    from astropy.io import fits

__all__ = [
    "DEFAULT_BAD_MASK_BITS",
    "HSC_MASK_BITS",
    "mask_bits_value",
    "mask_plane",
    "masked_fraction",
]

HSC_MASK_BITS: dict[str, int] = {
    "BAD": 0,
    "SAT": 1,
    "INTRP": 2,
    "CR": 3,
    "EDGE": 4,
    "DETECTED": 5,
    "DETECTED_NEGATIVE": 6,
    "SUSPECT": 7,
    "NO_DATA": 8,
    "BRIGHT_OBJECT": 9,
    "CLIPPED": 10,
    "CROSSTALK": 11,
    "NOT_DEBLENDED": 12,
    "UNMASKEDNAN": 13,
    "REJECTED": 14,
    "SENSOR_EDGE": 15,
    "INEXACT_PSF": 16,
}
"""HSC-SSP PDR2 coadd mask planes (plane name -> bit number).

A file may declare its own planes with ``MP_<NAME>`` cards in the MASK header;
:func:`~warehouse.images.fits.read_cutout_fits` returns those in
:attr:`~warehouse.images.fits.CutoutImage.mask_planes`.
"""

DEFAULT_BAD_MASK_BITS: tuple[str, ...] = (
    "BAD",
    "SAT",
    "INTRP",
    "CR",
    "EDGE",
    "SUSPECT",
    "NO_DATA",
    "UNMASKEDNAN",
)
"""Planes whose pixels hold missing or unreliable flux (the default of :func:`masked_fraction`).

Left out on purpose: ``DETECTED``/``DETECTED_NEGATIVE`` (a source is there, the
flux is fine), ``BRIGHT_OBJECT`` (a region near a bright star, the pixels are
valid), and the coadd bookkeeping planes ``CLIPPED``, ``CROSSTALK``,
``NOT_DEBLENDED``, ``REJECTED``, ``SENSOR_EDGE``, ``INEXACT_PSF``, which mark
that some input exposures were dropped or the PSF model is approximate.  The
choice mirrors the GalaxiesML quality cuts (edge, interpolated, saturated,
cosmic ray, bad).
"""


def mask_bits_value(bits: Iterable[str | int], planes: Mapping[str, int] | None = None) -> int:
    """OR of the given mask planes, by name (``'SAT'``) or bit number (``1``).

    Names are looked up in ``planes`` (e.g. :attr:`CutoutImage.mask_planes`)
    and then in :data:`HSC_MASK_BITS`.

    Examples
    --------
    >>> mask_bits_value(["BAD", "SAT", 4])
    19
    """
    table = {**HSC_MASK_BITS, **(planes or {})}
    value = 0
    for bit in bits:
        if isinstance(bit, str):
            key = bit.strip().upper()
            if key not in table:
                raise ValueError(f"unknown mask plane {bit!r}; known: {sorted(table)}")
            number = table[key]
        else:
            number = int(bit)
        if not 0 <= number < 31:
            raise ValueError(f"mask bit {number} outside 0..30")
        value |= 1 << number
    return value


def masked_fraction(
    mask: np.ndarray,
    bits: Iterable[str | int] | str | None = None,
    planes: Mapping[str, int] | None = None,
) -> float:
    """Fraction of pixels with any of the given mask bits set.

    Parameters
    ----------
    mask : numpy.ndarray
        Integer bit mask of any shape.
    bits : iterable of str or int, or ``'any'``, optional
        Plane names or bit numbers; default :data:`DEFAULT_BAD_MASK_BITS`
        (so ``DETECTED`` alone does not count as bad); ``'any'`` counts every
        nonzero pixel.
    planes : mapping, optional
        Plane name -> bit of this file, if it declares its own.

    Returns
    -------
    float
        In [0, 1]; 0.0 for an empty mask.

    Examples
    --------
    >>> masked_fraction(np.array([0, 32, 1, 2]))  # DETECTED, BAD, SAT
    0.5
    """
    m = np.asarray(mask)
    if m.dtype.kind not in "iub":
        raise ValueError(f"mask must be an integer array, got dtype {m.dtype}")
    if m.size == 0:
        return 0.0
    if isinstance(bits, str):
        if bits.lower() != "any":
            raise ValueError(f"bits must be plane names, bit numbers or 'any', got {bits!r}")
        return float(np.count_nonzero(m) / m.size)
    value = mask_bits_value(DEFAULT_BAD_MASK_BITS if bits is None else bits, planes)
    return float(np.count_nonzero(m.astype(np.int64) & value) / m.size)


def _fail(path: Path, what: str) -> CutoutError:
    return CutoutError(f"{path}: {what}")


def mask_plane(path: Path, hdu: fits.ImageHDU) -> np.ndarray:
    """The int32 bit planes of a MASK HDU (FITS unsigned integers undone); CutoutError if not."""
    data = np.asarray(hdu.data)
    if data.dtype.kind not in "iu":
        raise _fail(path, f"MASK HDU holds {data.dtype}, expected integer bit planes.")
    bscale, bzero = hdu.header.get("BSCALE", 1), hdu.header.get("BZERO", 0)
    values = data.astype(np.int64)
    if bscale != 1 or bzero not in (0, 2 ** (8 * data.dtype.itemsize - 1)):
        raise _fail(
            path,
            f"MASK HDU has BSCALE={bscale}, BZERO={bzero}; expected plain "
            "integers (or the FITS unsigned-integer offset).",
        )
    values += int(bzero)  # FITS stores unsigned integers as signed + 2**(bits-1)
    if values.size and (values.min() < np.iinfo(np.int32).min or values.max() > 2**31 - 1):
        raise _fail(path, "MASK HDU values do not fit in int32.")
    return values.astype(np.int32)
