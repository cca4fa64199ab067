"""HSC broad bands and filter names, and the coadd pixel scale.

>>> band_from_filter("HSC-I2")
'i'
"""

from __future__ import annotations

__all__ = ["BANDS", "HSC_PIXEL_SCALE", "band_from_filter", "comma_bands"]

BANDS: tuple[str, ...] = ("g", "r", "i", "z", "y")
"""HSC broad bands in wavelength order; arrays of shape (5, H, W) follow it."""

HSC_PIXEL_SCALE = 0.168
"""HSC coadd pixel scale in arcsec per pixel."""

FILTER_TO_BAND = {
    "HSC-G": "g",
    "HSC-R": "r",
    "HSC-R2": "r",
    "HSC-I": "i",
    "HSC-I2": "i",
    "HSC-Z": "z",
    "HSC-Y": "y",
}
BAND_TO_FILTER = {"g": "HSC-G", "r": "HSC-R", "i": "HSC-I", "z": "HSC-Z", "y": "HSC-Y"}


def band_from_filter(filter_name: str) -> str:
    """Normalise an HSC filter name to its band letter.

    ``HSC-R2`` and ``HSC-I2`` are the replacement r and i filters and map to
    ``'r'`` and ``'i'``; single letters (any case) are accepted as they are.

    Examples
    --------
    >>> band_from_filter("HSC-I2"), band_from_filter("r")
    ('i', 'r')
    """
    name = filter_name.strip()
    if name.lower() in BANDS:
        return name.lower()
    band = FILTER_TO_BAND.get(name.upper())
    if band is None:
        raise ValueError(
            f"unknown HSC filter {filter_name!r}; expected one of "
            f"{sorted(FILTER_TO_BAND)} or a band letter {list(BANDS)}"
        )
    return band


def comma_bands(text: str) -> list[str]:
    """The band names of a ``--bands`` list written with commas (``"g, r,i"``), stripped. An
    empty name (``"g,,r"``, a trailing comma) is refused: it was dropped without a word, so a
    band typed wrong (``g,,r`` for ``g,i,r``) went missing from the result.

    >>> comma_bands("g, r,i")
    ['g', 'r', 'i']
    """
    names = [b.strip() for b in text.split(",")]
    if not all(names):
        raise ValueError(
            f"--bands {text!r} has an empty band name between commas; write e.g. g,r,i"
        )
    return names
